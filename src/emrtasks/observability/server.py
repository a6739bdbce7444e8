"""`GET /metrics` on its own address (`EMRTASKS_METRICS_ADDRESS`), never on the API's port: a tiny
HTTP/1.0 server on the event loop, so a scrape reads the database with the process's own engine."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("emrtasks.metrics")

_HEAD_LIMIT = 8192
_READ_SECONDS = 5.0


def parse_address(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces); ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 (the operator asked for every interface)
    return host, int(port)


@contextlib.asynccontextmanager
async def serving(address: str, exposition: Callable[[], Awaitable[bytes]]) -> AsyncIterator[asyncio.Server]:
    """Serve the metrics on `address` while the block runs."""
    host, port = parse_address(address)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _answer(reader, writer, exposition)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a scraper that went away or sent nonsense: nothing to tell it
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, port, limit=_HEAD_LIMIT)
    bound = server.sockets[0].getsockname()
    log.info("metrics on http://%s:%d/metrics", bound[0], bound[1])
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, exposition: Callable[[], Awaitable[bytes]]
) -> None:
    async with asyncio.timeout(_READ_SECONDS):
        head = await reader.readuntil(b"\r\n\r\n")
    method, _, rest = head.partition(b" ")
    path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        status, body, kind = b"405 Method Not Allowed", b"GET /metrics\n", b"text/plain"
    elif path != b"/metrics":
        status, body, kind = b"404 Not Found", b"GET /metrics\n", b"text/plain"
    else:
        status, body, kind = b"200 OK", await exposition(), CONTENT_TYPE_LATEST.encode()
    writer.write(
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + kind
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        + (body if method != b"HEAD" else b"")
    )
    await writer.drain()
