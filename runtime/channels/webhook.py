"""HTTP POST of each message as JSON with an `Idempotency-Key` header.

Settings: url, timeout (s), retries, backoff (s: the jittered exponential backoff's base), max_retry_after (s,
default 60), token_env (sent as a Bearer token). 5xx, 429, timeouts and connection errors are retried (runtime/
channels/retry.py: tenacity, at least the provider's `Retry-After` on 429/503); other 4xx are permanent (the next
channel in the fallback chain is tried).

Each worker thread of the channel's pool keeps its own keep-alive connection (the standard library's
`http.client`, HTTPS with the system's certificate checks), so connections are reused across messages and
batches, and no pool is shared between threads. A connection that fails or is left half-read is closed and the
attempt retried on a new one (the key lets the provider drop a repeat). Why `http.client` and not a pooling
client: on this 2-core machine, with 64 threads against a local receiver at 20 ms, urllib3's PoolManager spent
about 540 µs of CPU per request under the interpreter lock and `http.client` with a connection per thread 260 µs,
which is what lifts concurrent dispatch past 2,000 messages/s (bench/RESULTS.md, issue 16); httpx's sync client
did 177 requests/s there (its pool serialises the threads).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from urllib.parse import urlsplit

from runtime.channels import Channel, Message, PermanentFailure
from runtime.channels.retry import Retry, retry_after, with_retries


class Webhook(Channel):
    default_concurrency = 64  # 64 in flight: 3,200 messages/s at a 20 ms round trip

    def __init__(self, name, settings):
        super().__init__(name, settings)
        if "url" not in settings:
            raise ValueError(f"channel {name}: webhook needs settings.url")
        url = urlsplit(str(settings["url"]))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"channel {name}: settings.url must be an http:// or https:// URL, not {settings['url']!r}")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._timeout = float(settings.get("timeout", 5))
        self._headers = {"User-Agent": "camp", "Content-Type": "application/json"}
        token = self.secret("token")
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []  # every thread's connection, to close them all
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection (made on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _drop(self) -> None:
        """Close this thread's connection after a failure: the next attempt opens a new one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)

    def send(self, message: Message) -> str:
        payload = {"key": message.key, "campaign": message.campaign, "step": message.step,
                   "occurrence": message.occurrence, "user_id": message.user_id, "channel": message.channel,
                   "address": message.address, "subject": message.subject, "body": message.body,
                   "plan_hash": message.plan_hash, "data": message.data}
        body = json.dumps(payload).encode()
        headers = {**self._headers, "Idempotency-Key": message.key}

        def attempt() -> str:
            try:
                conn = self._connection()
                conn.request("POST", self._path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, dropped or garbled answers
                self._drop()
                raise Retry(f"{type(exc).__name__}: {exc}") from None
            if resp.status < 300:
                try:
                    return str(json.loads(data).get("id") or message.key)
                except (ValueError, AttributeError):
                    return message.key
            if resp.status >= 500 or resp.status == 429:
                after = retry_after(resp.getheader("Retry-After")) if resp.status in (429, 503) else None
                raise Retry(f"HTTP {resp.status}", after)
            raise PermanentFailure(f"HTTP {resp.status}: {data[:200].decode(errors='replace')}")

        return with_retries(attempt, retries=int(self.settings.get("retries", 3)),
                            backoff=float(self.settings.get("backoff", 0.2)),
                            max_retry_after=float(self.settings.get("max_retry_after", 60)),
                            before_retry=self.pace, what="webhook")

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
