"""A small webhook receiver for trying emrtasks locally: verifies each delivery and prints the event.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... python examples/receiver.py 9000

Answers 401 to a delivery whose signature does not verify, 200 otherwise, and ignores a delivery
whose webhook-id it has already seen (deliveries are at least once).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

verifier = Webhook(os.environ["WEBHOOK_SECRET"])
seen: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = verifier.verify(body, headers)  # the raw bytes, exactly as received
        except WebhookVerificationError as exc:
            print(f"rejected: {exc}", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        if headers["webhook-id"] in seen:
            return
        seen.add(headers["webhook-id"])
        attempt = headers.get("webhook-attempt")
        print(f"verified {event['type']} (attempt {attempt}):", json.dumps(event["data"]), flush=True)

    def log_message(self, *_: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
