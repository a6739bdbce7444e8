"""The benchmark's webhook receiver: raw asyncio HTTP/1.1 on 127.0.0.1, every delivery verified.

    WEBHOOK_SECRET=whsec_... python bench/receiver.py --port 9000

Each delivery is verified with the `standardwebhooks` package over the raw body bytes; a verified one
is answered 200 and recorded as task_id -> (time.monotonic_ns() once verified, attempt, event type).
CLOCK_MONOTONIC is shared by every process on the machine, so the load generator subtracts its own
send times from these. A delivery that fails verification is answered 401 and counted.

Control routes (loopback, for the harness): `GET /_bench/stats`, `POST /_bench/reset` (forget the
records, keep the totals), `POST /_bench/expect` (a JSON list of task ids), `GET /_bench/wait?timeout=S`
(until every expected id has arrived), `GET /_bench/wait-total?n=N&timeout=S` (until N distinct
deliveries have arrived since start), `GET /_bench/records`.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_UNAUTHORIZED = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
_MAX_WAIT_SECONDS = 300.0


class Receiver:
    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.records: dict[str, tuple[int, int, str]] = {}
        self.seen_ids: set[str] = set()
        self.deliveries = 0
        self.duplicates = 0
        self.invalid = 0
        self.expected: set[str] = set()
        self.changed = asyncio.Event()
        self.started = time.monotonic()
        self.cpu_started = time.process_time()

    def on_delivery(self, body: bytes, headers: dict[str, str]) -> bytes:
        self.deliveries += 1
        try:
            event = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            self.invalid += 1
            return _UNAUTHORIZED
        verified_at = time.monotonic_ns()
        webhook_id = headers["webhook-id"]
        if webhook_id in self.seen_ids:
            self.duplicates += 1
            return _OK
        self.seen_ids.add(webhook_id)
        task_id = str(event.get("data", {}).get("task_id", webhook_id))
        self.records[task_id] = (verified_at, int(headers.get("webhook-attempt", "1")), str(event["type"]))
        self.expected.discard(task_id)
        self.changed.set()
        return _OK

    async def control(self, method: str, target: str, body: bytes) -> bytes:
        parts = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        timeout = min(float(query.get("timeout", "10")), _MAX_WAIT_SECONDS)
        route = (method, parts.path)
        if route == ("GET", "/_bench/stats"):
            return _json(self.stats())
        if route == ("POST", "/_bench/reset"):
            self.records.clear()
            self.expected.clear()
            return _json(self.stats())
        if route == ("POST", "/_bench/expect"):
            self.expected = {task_id for task_id in json.loads(body) if task_id not in self.records}
            return _json({"missing": len(self.expected)})
        if route == ("GET", "/_bench/wait"):
            complete = await self._wait_until(lambda: not self.expected, timeout)
            return _json({"complete": complete, "missing": len(self.expected)})
        if route == ("GET", "/_bench/wait-total"):
            wanted = int(query.get("n", "0"))
            complete = await self._wait_until(lambda: len(self.seen_ids) >= wanted, timeout)
            return _json({"complete": complete, **self.stats()})
        if route == ("GET", "/_bench/records"):
            return _json(self.records)
        raise LookupError(target)

    async def _wait_until(self, done: Callable[[], bool], limit_s: float) -> bool:
        deadline = time.monotonic() + limit_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
        return True

    def stats(self) -> dict[str, float | int]:
        return {
            "verified_total": len(self.seen_ids),
            "phase_records": len(self.records),
            "deliveries": self.deliveries,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "cpu_seconds": round(time.process_time() - self.cpu_started, 3),
            "wall_seconds": round(time.monotonic() - self.started, 3),
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _version = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if target.startswith("/_bench/"):
                    try:
                        answer = await self.control(method, target, body)
                    except LookupError:
                        answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
                else:
                    answer = self.on_delivery(body, headers)
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def _json(payload: object) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def serve(port: int, secret: str) -> None:
    receiver = Receiver(secret)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"receiver listening on http://127.0.0.1:{port}/", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ["WEBHOOK_SECRET"]
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, secret))
    else:
        uvloop.run(serve(args.port, secret))


if __name__ == "__main__":
    main()
