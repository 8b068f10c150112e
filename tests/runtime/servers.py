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
                hook.raw.append({"key": key, "path": self.path, **body})
                n = len(hook.raw)
                fail = hook.fail_times.get(user, 0)
                if fail:
                    hook.fail_times[user] = fail - 1
                slow = hook.slow_times.get(user, 0)
                if slow:
                    hook.slow_times[user] = slow - 1
            if hook.on_request is not None:
                hook.on_request(n, body)
            if slow:
                time.sleep(hook.slow_s)
            if fail:
                return self._answer(503, {"error": "try later"})
            if (self.path, user) in hook.reject:
                return self._answer(422, {"error": "unknown device"})
            with hook.lock:
                first = hook.delivered.setdefault(key, {**body, "path": self.path})
            self._answer(200, {"id": "msg-" + first["key"].replace("/", "-")})

        def _answer(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(code)
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


def start_smtp(port: int):
    """aiosmtpd on `port`; returns (controller, messages) where messages collects every email."""
    from aiosmtpd.controller import Controller

    messages: list = []

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd)
            if address.endswith("@bounce.invalid"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd)
            from email import message_from_bytes
            from email.policy import default

            messages.append(message_from_bytes(envelope.content, policy=default))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, messages
