"""A small webhook receiver for trying emrtasks locally: verifies each delivery and prints it.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... python examples/receiver.py 9000             # Standard Webhooks
    WEBHOOK_SECRET=whsec_... python examples/receiver.py 9000 --cobalt    # Cobalt's header instead

By default the `webhook-signature` header is checked with the official `standardwebhooks` package.
With `--cobalt` the `cobalt-verification` header is checked as Cobalt's clients do (lowercase hex
HMAC-SHA256 of the body, keyed with the secret string as UTF-8; Python's standard library only).
Answers 401 to a delivery that does not verify, 200 otherwise, and prints every delivery with its
attempt number, saying so when its webhook-id came before (deliveries are at least once: a retry, a
resend or a recover brings an event again).
"""

import hashlib
import hmac
import json
import os
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

Verify = Callable[[bytes, dict[str, str]], dict[str, Any]]


class Refused(Exception):
    pass


def standard_verifier(secret: str) -> Verify:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    webhook = Webhook(secret)

    def verify(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        try:
            event: dict[str, Any] = webhook.verify(body, headers)  # the raw bytes, exactly as received
        except WebhookVerificationError as exc:
            raise Refused(str(exc)) from exc
        return event

    return verify


def cobalt_verifier(secret: str) -> Verify:
    key = secret.encode("utf-8")  # the whole string, whsec_ included, as Cobalt's Node example keys it

    def verify(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("cobalt-verification", "")):
            raise Refused("cobalt-verification does not match")
        event: dict[str, Any] = json.loads(body)
        return event

    return verify


def handler(verify: Verify) -> type[BaseHTTPRequestHandler]:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            event_id, attempt = headers.get("webhook-id"), headers.get("webhook-attempt")
            try:
                event = verify(body, headers)
            except Refused as exc:
                print(f"rejected {event_id} (attempt {attempt}): {exc}", flush=True)
                self._answer(401)
                return
            self._answer(200)
            again = ", received before" if event_id in seen else ""
            seen.add(str(event_id))
            data = json.dumps(event["data"])
            print(f"verified {event['type']} {event_id} (attempt {attempt}{again}): {data}", flush=True)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    return Handler


def main(argv: list[str]) -> None:
    cobalt = "--cobalt" in argv
    ports = [arg for arg in argv if arg != "--cobalt"]
    port = int(ports[0]) if ports else 9000
    secret = os.environ["WEBHOOK_SECRET"]
    verify = cobalt_verifier(secret) if cobalt else standard_verifier(secret)
    server = HTTPServer(("127.0.0.1", port), handler(verify))
    header = "cobalt-verification" if cobalt else "webhook-signature"
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/ (checking {header})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
