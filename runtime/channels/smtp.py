"""Email over SMTP. Settings: host, port, from, starttls (bool), timeout, username, password_env."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from runtime.channels import Channel, Message, PermanentFailure, TransientFailure


class Smtp(Channel):
    def __init__(self, name, settings):
        super().__init__(name, settings)
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is None:
            host = self.settings.get("host", "127.0.0.1")
            port = int(self.settings.get("port", 25))
            timeout = float(self.settings.get("timeout", 10))
            conn = smtplib.SMTP(host, port, timeout=timeout)
            if self.settings.get("starttls"):
                conn.starttls()
            user = self.secret("username")
            if user:
                conn.login(user, self.secret("password") or "")
            self._conn = conn
        return self._conn

    def send(self, message: Message) -> str:
        if not message.address:
            raise PermanentFailure("no email address")
        msg = EmailMessage()
        msg["From"] = str(self.settings.get("from", "camp@localhost"))
        msg["To"] = message.address
        msg["Subject"] = message.subject or message.campaign
        msg["Date"] = formatdate(localtime=False)
        msg_id = f"<{hashlib.sha256(message.key.encode()).hexdigest()[:32]}@camp>"
        msg["Message-ID"] = msg_id  # the same on a retry: receivers can drop the duplicate
        msg["X-Camp-Idempotency-Key"] = message.key
        msg.set_content(message.body)
        attempts = int(self.settings.get("retries", 2)) + 1
        last: Exception | None = None
        for _ in range(attempts):
            try:
                self._connect().send_message(msg)
                return msg_id
            except smtplib.SMTPRecipientsRefused as exc:
                raise PermanentFailure(f"recipient refused: {exc.recipients}") from None
            except smtplib.SMTPResponseException as exc:
                if 500 <= exc.smtp_code < 600:
                    raise PermanentFailure(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
                last = exc
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                last = exc
            self.close()
        raise TransientFailure(f"SMTP failed after {attempts} attempts: {last}")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._conn = None
