"""Email over SMTP. Settings: host, port, from, starttls (bool), timeout, username, password_env, retries,
backoff (s), max_retry_after (s).

Connections are reused: one per worker thread (smtplib.SMTP is not thread-safe), opened on the thread's first
message and kept for the run; an attempt that fails on a broken connection closes it, and the retry opens a new
one. 4xx answers and dropped connections are retried (tenacity, runtime/channels/retry.py); 5xx and refused
recipients are permanent (the next channel of the chain).
"""

from __future__ import annotations

import hashlib
import smtplib
import threading
from email.message import EmailMessage
from email.utils import formatdate

from runtime.channels import Channel, Message, PermanentFailure
from runtime.channels.retry import Retry, with_retries


class Smtp(Channel):
    default_concurrency = 8  # mail servers limit connections per client; 8 is what most accept

    def __init__(self, name, settings):
        super().__init__(name, settings)
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()  # every thread's connection, for close()
        self._lock = threading.Lock()
        self.connections_made = 0

    def _connect(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is None:
            host = self.settings.get("host", "127.0.0.1")
            port = int(self.settings.get("port", 25))
            timeout = float(self.settings.get("timeout", 10))
            conn = smtplib.SMTP(host, port, timeout=timeout)
            if self.settings.get("starttls"):
                conn.starttls()
            user = self.secret("username")
            if user:
                conn.login(user, self.secret("password") or "")
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
                self.connections_made += 1
        return conn

    def _drop(self) -> None:
        """This thread's connection failed: closed, so the next attempt connects anew."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._open.discard(conn)
            _quit(conn)

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

        def attempt() -> str:
            try:
                self._connect().send_message(msg)
                return msg_id
            except smtplib.SMTPRecipientsRefused as exc:  # smtplib has sent RSET: the connection stays usable
                raise PermanentFailure(f"recipient refused: {exc.recipients}") from None
            except smtplib.SMTPResponseException as exc:
                if 500 <= exc.smtp_code < 600:
                    raise PermanentFailure(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
                self._drop()
                raise Retry(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                self._drop()
                raise Retry(f"{type(exc).__name__}: {exc}") from None

        return with_retries(attempt, retries=int(self.settings.get("retries", 2)),
                            backoff=float(self.settings.get("backoff", 0.2)),
                            max_retry_after=float(self.settings.get("max_retry_after", 60)),
                            before_retry=self.pace, what="SMTP")

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            _quit(conn)
        self._local = threading.local()


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        try:
            conn.close()
        except OSError:
            pass
