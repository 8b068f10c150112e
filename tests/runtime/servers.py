"""Real receivers for the channel tests: an HTTP server and an SMTP server, in threads of the test process.

The HTTP receiver behaves like a provider that honours `Idempotency-Key` (as payment and messaging
APIs do): a repeated key is answered with the first response and is not a second delivery. It
records every raw request too, so tests see retries and duplicates.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hook:
    raw: list[dict] = field(default_factory=list)  # every request, in order
    delivered: dict[str, dict] = field(default_factory=dict)  # idempotency key -> first payload
    fail_times: dict[str, int] = field(default_factory=dict)  # user -> answer 503 this many times first
    slow_times: dict[str, int] = field(default_factory=dict)  # user -> answer after `slow_s` this many times
    slow_s: float = 1.0
    reject: set[tuple[str, str]] = field(default_factory=set)  # (path, user) answered 422 (permanent)
    on_request: Callable[[int, dict], None] | None = None  # called with the raw count before answering
    latency_s: float = 0.0  # every answer waits this long (a provider's round trip)
    throttle: dict[str, list[str]] = field(default_factory=dict)  # user -> Retry-After values: one 429 each first
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request, in order
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests held at once: proof the client sent concurrently
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_hook() -> tuple[Hook, ThreadingHTTPServer, str]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            return None

        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers.get("Idempotency-Key")
            user = body["user_id"]
            with hook.lock:
                hook.arrivals.append(time.monotonic())
                hook.raw.append({"key": key, "path": self.path, **body})
                n = len(hook.raw)
                hook.in_flight += 1
                hook.max_in_flight = max(hook.max_in_flight, hook.in_flight)
                throttled = hook.throttle.get(user)
                after = throttled.pop(0) if throttled else None
                fail = hook.fail_times.get(user, 0)
                if fail:
                    hook.fail_times[user] = fail - 1
                slow = hook.slow_times.get(user, 0)
                if slow:
                    hook.slow_times[user] = slow - 1
            try:
                if hook.on_request is not None:
                    hook.on_request(n, body)
                if hook.latency_s:
                    time.sleep(hook.latency_s)
                if slow:
                    time.sleep(hook.slow_s)
                if after is not None:
                    return self._answer(429, {"error": "slow down"}, {"Retry-After": after})
                if fail:
                    return self._answer(503, {"error": "try later"})
                if (self.path, user) in hook.reject:
                    return self._answer(422, {"error": "unknown device"})
                with hook.lock:
                    first = hook.delivered.setdefault(key, {**body, "path": self.path})
                self._answer(200, {"id": "msg-" + first["key"].replace("/", "-")})
            finally:
                with hook.lock:
                    hook.in_flight -= 1

        def _answer(self, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout) or was killed
                pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the channels send concurrently: a listen backlog of 5 would refuse connections

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook, server, f"http://127.0.0.1:{server.server_address[1]}"


class Received(list):
    """Every email the SMTP receiver accepted; `sessions`: the SMTP sessions (connections) that said EHLO/HELO."""

    sessions = 0


def start_smtp(port: int, defer_once: set[str] | None = None):
    """aiosmtpd on `port`; returns (controller, messages) where messages collects every email. An address in
    `defer_once` has its first DATA answered 421 (the server closes the session): the client reconnects."""
    from aiosmtpd.controller import Controller

    messages = Received()
    deferred = set(defer_once or ())

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 (aiosmtpd)
            messages.sessions += 1
            session.host_name = hostname
            return responses

        async def handle_HELO(self, server, session, envelope, hostname):  # noqa: N802 (aiosmtpd)
            messages.sessions += 1
            session.host_name = hostname
            return f"250 {server.hostname}"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd)
            if address.endswith("@bounce.invalid"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd)
            from email import message_from_bytes
            from email.policy import default

            if deferred & set(envelope.rcpt_tos):
                deferred.difference_update(envelope.rcpt_tos)
                return "421 4.3.0 try again later"
            messages.append(message_from_bytes(envelope.content, policy=default))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, messages
