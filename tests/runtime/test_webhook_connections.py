"""The webhook's connections (issue 16): one keep-alive `http.client` connection per worker thread, reused across
messages; a connection the provider drops is replaced and the message retried with the same key; HTTPS checks the
server's certificate. Real HTTP/1.1 servers on localhost, real threads."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime.channels import Message, TransientFailure
from runtime.channels.webhook import Webhook


def message(user: str) -> Message:
    return Message(key=f"c/s/o/{user}", campaign="c", step="s", occurrence="o", user_id=user, channel="push",
                   address=None, subject=None, body="hi", plan_hash="h")


class KeepAlive:
    """An HTTP/1.1 server that keeps connections open, records the client's port of every request, and drops the
    connection (no answer) on the requests whose user is in `drop` (once each)."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.ports: list[int] = []
        self.keys: list[str] = []
        self.drop: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                return None

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.ports.append(self.client_address[1])
                    outer.keys.append(self.headers["Idempotency-Key"])
                    dropped = body["user_id"] in outer.drop
                    outer.drop.discard(body["user_id"])
                if dropped:
                    self.close_connection = True
                    self.connection.close()
                    return
                data = json.dumps({"id": "id-" + body["user_id"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_each_thread_reuses_one_connection_and_a_dropped_one_is_replaced_and_retried_with_the_same_key():
    srv = KeepAlive()
    try:
        channel = Webhook("push", {"url": f"http://127.0.0.1:{srv.port}/push", "retries": 2, "backoff": 0.001})
        srv.drop = {"7", "23"}
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda i: channel.send(message(str(i))), range(60)))
        assert ids == [f"id-{i}" for i in range(60)]
        assert len(srv.keys) == 62  # every message once, and the two dropped ones twice, with their own key
        assert srv.keys.count("c/s/o/7") == 2 and srv.keys.count("c/s/o/23") == 2
        assert len(set(srv.keys)) == 60
        assert len(set(srv.ports)) <= 4 + 2  # a connection per thread, and a new one after each drop
        channel.close()
        assert channel.send(message("again")) == "id-again"  # a closed channel opens a new connection when used
        channel.close()
    finally:
        srv.stop()


def _self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_https_checks_the_certificate(tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    srv = KeepAlive(tls)
    try:
        url = f"https://127.0.0.1:{srv.port}/push"
        untrusted = Webhook("push", {"url": url, "retries": 0})
        with pytest.raises(TransientFailure, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.send(message("1"))
        untrusted.close()
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # the system's store, as ssl.create_default_context reads it
        trusted = Webhook("push", {"url": url, "retries": 0})
        assert [trusted.send(message(str(i))) for i in range(3)] == ["id-0", "id-1", "id-2"]
        trusted.close()
        assert srv.keys == ["c/s/o/0", "c/s/o/1", "c/s/o/2"]  # the refused attempt never reached the handler
        assert len(set(srv.ports)) == 1  # one TLS connection for the three
    finally:
        srv.stop()


def test_a_url_that_is_not_http_is_refused_when_the_channel_is_made():
    with pytest.raises(ValueError, match="http:// or https://"):
        Webhook("push", {"url": "ftp://example.invalid/x"})
