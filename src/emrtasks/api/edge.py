"""The HTTP edge: limits on what one socket may hold, enforced before a request reaches the app.

uvicorn offers a keep-alive timeout (after a response) and `limit_concurrency` (503 once too many
connections or tasks), and nothing else we need: its httptools parser (llhttp) reads a header of
any size, and no timer runs while a request's headers or body trickle in, or before a new
connection's first byte. `protocol_class` adds them to uvicorn's httptools protocol:

- header bytes: a request whose headers pass `max_header_bytes` is answered 431 and its connection
  closed as soon as the limit is crossed, never read whole;
- header read timeout: from a request's first byte to the end of its headers (a slowloris); 408;
- body read timeout: from the end of the headers to the end of the body; 408 if no answer has
  started, else the connection is closed;
- idle timeout: a new connection that sends nothing is closed after the keep-alive timeout,
  like one idle after a response;
- connections: past `max_connections` open at once, a new connection is answered 503 and closed.

Refusals are written straight to the socket (`Connection: close`) and the request never reaches
the app; a request whose body is cut off reads as a client disconnect there.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_END_OF_HEADERS = b"\r\n\r\n"


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int = 32_768
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_connections: int = 1000


def protocol_class(limits: EdgeLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with `limits` (pass it as `uvicorn.Config(http=...)`)."""
    return type("EdgeProtocol", (_EdgeProtocol,), {"limits": limits})


def _refusal(status: int, reason: str) -> bytes:
    body = f"{status} {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _EdgeProtocol(HttpToolsProtocol):
    limits: EdgeLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "idle" (between requests), "headers" (a request's head is arriving), "body" (its body is).
        self._phase = "idle"
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the head so far: an end of headers may straddle reads
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        too_many = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if too_many:
            self._refuse(503, "Service Unavailable")
            return
        # uvicorn arms its keep-alive timer only after a response: a silent new socket would stay.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == "idle":
            self._phase = "headers"
            self._header_bytes = 0
            self._tail = b""
            self._arm(self.limits.header_timeout_seconds, self._headers_too_slow)
        if self._phase == "headers" and self._head_too_large(data):
            self._refuse(431, "Request Header Fields Too Large")
            return
        super().data_received(data)

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head passes the limit with `data`: counted up to its end, if `data` holds it."""
        seen = self._tail + data
        end = seen.find(_END_OF_HEADERS)
        if end >= 0:
            size = self._header_bytes - len(self._tail) + end + len(_END_OF_HEADERS)
        else:
            size = self._header_bytes + len(data)
            self._tail = seen[-(len(_END_OF_HEADERS) - 1) :]
        self._header_bytes += len(data)
        return size > self.limits.max_header_bytes

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._arm(self.limits.body_timeout_seconds, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "idle"
        self._cancel_timer()
        super().on_message_complete()

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self._phase == "headers":
            self._refuse(408, "Request Timeout")

    def _body_too_slow(self) -> None:
        self._timer = None
        if self._phase != "body":
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self._refuse(None, "")
            return
        if cycle is not None:
            # The app sees a disconnect, and writes nothing after our answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(408, "Request Timeout")

    def _refuse(self, status: int | None, reason: str) -> None:
        self._refused = True
        self._cancel_timer()
        self._unset_keepalive_if_required()
        if not self.transport.is_closing():
            if status is not None:
                self.transport.write(_refusal(status, reason))
            self.transport.close()

    def _arm(self, seconds: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
