"""HTTP POST of each message as JSON with an `Idempotency-Key` header.

Settings: url, timeout (s), retries, backoff (s: the jittered exponential backoff's base), max_retry_after (s,
default 60), token_env (sent as a Bearer token). 5xx, 429, timeouts and connection errors are retried (runtime/
channels/retry.py: tenacity, at least the provider's `Retry-After` on 429/503); other 4xx are permanent (the next
channel in the fallback chain is tried).

One urllib3 `PoolManager` (thread-safe, a pool of keep-alive connections as large as the channel's concurrency)
serves every worker thread of the run: connections are reused across messages, batches and threads. Why urllib3
and not httpx here: measured with 64 threads against a local receiver on this 2-core machine, httpx's sync client
did 177 requests/s (its pool serialises the threads) and urllib3 1,580/s (bench/RESULTS.md, issue 16).
"""

from __future__ import annotations

import json

import urllib3

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
        self._headers["Content-Type"] = "application/json"
        self._client: urllib3.PoolManager | None = None

    def _http(self) -> urllib3.PoolManager:
        if self._client is None:  # made on first use: the pool's size is the concurrency set after __init__
            timeout = float(self.settings.get("timeout", 5))
            self._client = urllib3.PoolManager(num_pools=4, maxsize=self.concurrency, block=False,
                                               timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                               retries=False)
        return self._client

    def send(self, message: Message) -> str:
        payload = {"key": message.key, "campaign": message.campaign, "step": message.step,
                   "occurrence": message.occurrence, "user_id": message.user_id, "channel": message.channel,
                   "address": message.address, "subject": message.subject, "body": message.body,
                   "plan_hash": message.plan_hash, "data": message.data}
        client, url = self._http(), str(self.settings["url"])
        body = json.dumps(payload).encode()
        headers = {**self._headers, "Idempotency-Key": message.key}

        def attempt() -> str:
            try:
                resp = client.request("POST", url, body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:  # timeouts, refused and dropped connections
                raise Retry(f"{type(exc).__name__}: {exc}") from None
            if resp.status < 300:
                try:
                    return str(json.loads(resp.data).get("id") or message.key)
                except (ValueError, AttributeError):
                    return message.key
            if resp.status >= 500 or resp.status == 429:
                after = retry_after(resp.headers.get("Retry-After")) if resp.status in (429, 503) else None
                raise Retry(f"HTTP {resp.status}", after)
            raise PermanentFailure(f"HTTP {resp.status}: {resp.data[:200].decode(errors='replace')}")

        return with_retries(attempt, retries=int(self.settings.get("retries", 3)),
                            backoff=float(self.settings.get("backoff", 0.2)),
                            max_retry_after=float(self.settings.get("max_retry_after", 60)),
                            before_retry=self.pace, what="webhook")

    def close(self) -> None:
        if self._client is not None:
            self._client.clear()
            self._client = None
