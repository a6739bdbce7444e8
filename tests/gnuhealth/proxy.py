"""A loopback HTTP proxy in front of trytond that counts the JSON-RPC methods it passes and can cut the
connection after forwarding a call (the write happens; its reply is lost), as a network failure would."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: Counter[str] = Counter()
        self.cut: Counter[str] = Counter()
        """Method name -> how many of its next calls are forwarded and then answered by a cut connection."""
        self._lock = threading.Lock()

    def take(self, method: str) -> bool:
        """Count a call; True when its reply is to be lost."""
        with self._lock:
            self.calls[method] += 1
            if self.cut[method] > 0:
                self.cut[method] -= 1
                return True
            return False


@contextmanager
def serve(upstream: str) -> Iterator[tuple[str, Proxy]]:
    proxy = Proxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            method = str(json.loads(body or b"{}").get("method") or "")
            lost = proxy.take(method)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
            }
            answer = httpx.post(f"{proxy.upstream}{self.path}", content=body, headers=headers, timeout=60)
            if lost:
                self.close_connection = True  # the call was carried out; its caller never hears back
                return
            self.send_response(answer.status_code)
            self.send_header("content-type", answer.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the tests read the counts, not a log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
