"""HTTP POST of each message as JSON with an `Idempotency-Key` header.

Settings: url, timeout (s), retries, backoff (s: the jittered exponential backoff's base), max_retry_after (s,
default 60), token_env (sent as a Bearer token). 5xx, 429, timeouts and connection errors are retried (runtime/
channels/retry.py: tenacity, at least the provider's `Retry-After` on 429/503); other 4xx are permanent (the next
channel in the fallback chain is tried).

One `httpx.Client` (thread-safe, a pool of keep-alive connections as large as the channel's concurrency) serves
every worker thread of the run: connections are reused across messages, batches and threads.
"""

from __future__ import annotations

import httpx

from runtime.channels import Channel, Message, PermanentFailure
from runtime.channels.retry import Retry, retry_after, with_retries


class Webhook(Channel):
    default_concurrency = 64  # 64 in flight: 3,200 messages/s at a 20 ms round trip

    def __init__(self, name, settings):
        super().__init__(name, settings)
        if "url" not in settings:
            raise ValueError(f"channel {name}: webhook needs settings.url")
        self._headers = {"User-Agent": "camp"}
        token = self.secret("token")
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:  # made on first use: the pool's size is the concurrency set after __init__
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.Client(timeout=float(self.settings.get("timeout", 5)), headers=self._headers,
                                        limits=limits)
        return self._client

    def send(self, message: Message) -> str:
        payload = {"key": message.key, "campaign": message.campaign, "step": message.step,
                   "occurrence": message.occurrence, "user_id": message.user_id, "channel": message.channel,
                   "address": message.address, "subject": message.subject, "body": message.body,
                   "plan_hash": message.plan_hash, "data": message.data}
        client, url = self._http(), str(self.settings["url"])

        def attempt() -> str:
            try:
                resp = client.post(url, json=payload, headers={"Idempotency-Key": message.key})
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                raise Retry(f"{type(exc).__name__}: {exc}") from None
            if resp.status_code < 300:
                try:
                    return str(resp.json().get("id") or message.key)
                except ValueError:
                    return message.key
            if resp.status_code >= 500 or resp.status_code == 429:
                after = retry_after(resp.headers.get("Retry-After")) if resp.status_code in (429, 503) else None
                raise Retry(f"HTTP {resp.status_code}", after)
            raise PermanentFailure(f"HTTP {resp.status_code}: {resp.text[:200]}")

        return with_retries(attempt, retries=int(self.settings.get("retries", 3)),
                            backoff=float(self.settings.get("backoff", 0.2)),
                            max_retry_after=float(self.settings.get("max_retry_after", 60)),
                            before_retry=self.pace, what="webhook")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
