"""A webhook receiver on loopback for tests: real HTTP, answers from a script, verifies every delivery
with the official `standardwebhooks` package against the secrets it is told, and its
`cobalt-verification` header with Python's hmac."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float = 0.0
    verified_by: list[str] = field(default_factory=list)
    cobalt_verified_by: list[str] = field(default_factory=list)

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


class Receiver:
    """`answers` is consumed one status per request; when empty, `default` answers."""

    def __init__(self, default: int = 200, port: int = 0) -> None:
        self.default = default
        self.answers: list[int] = []
        self.extra_headers: dict[str, str] = {}
        self.delay_seconds = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.secrets: list[str] = []
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def verify(self, delivery: Delivery) -> list[str]:
        """The secrets (of those known) that verify this delivery with standardwebhooks."""
        good = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(delivery.body, delivery.headers)
                good.append(secret)
            except WebhookVerificationError:
                pass
        return good

    def cobalt_verify(self, delivery: Delivery) -> list[str]:
        """The secrets (of those known) whose UTF-8 keys the hex HMAC-SHA256 of the body in
        `cobalt-verification`."""
        given = delivery.headers.get("cobalt-verification", "")
        return [
            secret
            for secret in self.secrets
            if hmac.compare_digest(
                hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest(), given
            )
        ]

    def verified(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.verified_by and 200 <= d.status < 300]

    def wait_for(self, predicate: Callable[["Receiver"], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.02)
        raise AssertionError(f"receiver: condition not met; {len(self.deliveries)} deliveries seen")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received_at = time.monotonic()
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.in_flight -= 1
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    delivery = Delivery(headers, body, status, received_at)
                    delivery.verified_by = receiver.verify(delivery)
                    delivery.cobalt_verified_by = receiver.cobalt_verify(delivery)
                    receiver.deliveries.append(delivery)
                self.send_response(status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
