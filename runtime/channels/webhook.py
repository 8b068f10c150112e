"""HTTP POST of each message as JSON with an `Idempotency-Key` header.

Settings: url, timeout (s), retries, backoff (s, doubled each retry), token_env (sent as a Bearer
token). 5xx, 429, timeouts and connection errors are retried with backoff; other 4xx are permanent
(the next channel in the fallback chain is tried).
"""

from __future__ import annotations

import time

import httpx

from runtime.channels import Channel, Message, PermanentFailure, TransientFailure


class Webhook(Channel):
    def __init__(self, name, settings):
        super().__init__(name, settings)
        if "url" not in settings:
            raise ValueError(f"channel {name}: webhook needs settings.url")
        headers = {"User-Agent": "camp"}
        token = self.secret("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(timeout=float(settings.get("timeout", 5)), headers=headers)

    def send(self, message: Message) -> str:
        payload = {"key": message.key, "campaign": message.campaign, "step": message.step,
                   "occurrence": message.occurrence, "user_id": message.user_id, "channel": message.channel,
                   "address": message.address, "subject": message.subject, "body": message.body,
                   "plan_hash": message.plan_hash, "data": message.data}
        retries = int(self.settings.get("retries", 3))
        delay = float(self.settings.get("backoff", 0.2))
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(delay * 2 ** (attempt - 1))
            try:
                resp = self._client.post(str(self.settings["url"]), json=payload,
                                         headers={"Idempotency-Key": message.key})
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code < 300:
                try:
                    return str(resp.json().get("id") or message.key)
                except ValueError:
                    return message.key
            if resp.status_code >= 500 or resp.status_code == 429:
                last = f"HTTP {resp.status_code}"
                continue
            raise PermanentFailure(f"HTTP {resp.status_code}: {resp.text[:200]}")
        raise TransientFailure(f"webhook failed after {retries + 1} attempts: {last}")

    def close(self) -> None:
        self._client.close()
