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
    """One timer per connection, never re-armed per request: each phase records when it began, and
    the timer, when it fires, acts if its phase has outlived its limit, or waits for the new deadline.
    A request that arrives whole in one read arms nothing; uvicorn's own keep-alive timer (armed and
    cancelled on every request) is replaced by the "idle" phase."""

    limits: EdgeLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "idle" (no request, its answer sent), "headers" (a request's head is arriving), "body" (its
        # body is), "app" (the request is read, the app has not answered: no limit).
        self._phase = "idle"
        self._since = 0.0  # the loop's time when the phase began
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
        # uvicorn's keep-alive counts only after a response: a silent new socket would stay.
        self._enter("idle")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        phase = self._phase
        if phase == "idle" or phase == "app":
            self._phase, self._since = "headers", self.loop.time()
            self._header_bytes = 0
            self._tail = b""
            phase = "headers"
        if phase == "headers" and self._head_too_large(data):
            self._refuse(431, "Request Header Fields Too Large")
            return
        super().data_received(data)
        if self._phase != "app":  # the request is not whole yet (or the app answered early)
            self._ensure_timer()

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head passes the limit with `data`: counted up to its end, if `data` holds it."""
        seen = self._tail + data if self._tail else data
        end = seen.find(_END_OF_HEADERS)
        if end >= 0:
            size = self._header_bytes - len(self._tail) + end + len(_END_OF_HEADERS)
        else:
            size = self._header_bytes + len(data)
            self._tail = seen[-(len(_END_OF_HEADERS) - 1) :]
        self._header_bytes += len(data)
        return size > self.limits.max_header_bytes

    def on_headers_complete(self) -> None:
        self._phase, self._since = "body", self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # An answer sent before the body was read whole (413, say) leaves the connection idle now.
        cycle = self.cycle
        self._phase = "idle" if cycle is not None and cycle.response_complete else "app"
        self._since = self.loop.time()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's (0.55), with the idle phase instead of a keep-alive timer armed per response."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._phase == "app":
            self._enter("idle")

    def _enter(self, phase: str) -> None:
        self._phase, self._since = phase, self.loop.time()
        self._ensure_timer()

    def _ensure_timer(self) -> None:
        """A timer that fires by the current phase's deadline (early is fine: it waits again)."""
        if self._timer is None:
            self._arm()
        elif self._timer.when() > self._since + self._limit(self._phase):
            self._cancel_timer()
            self._arm()

    def _limit(self, phase: str) -> float:
        if phase == "headers":
            return self.limits.header_timeout_seconds
        if phase == "body":
            return self.limits.body_timeout_seconds
        return float(self.timeout_keep_alive)

    def _arm(self) -> None:
        self._timer = self.loop.call_at(self._since + self._limit(self._phase), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        phase = self._phase
        if phase == "app" or self._refused:
            return
        if self.loop.time() < self._since + self._limit(phase):
            self._arm()
        elif phase == "headers":
            self._refuse(408, "Request Timeout")
        elif phase == "body":
            self._body_too_slow()
        elif not self.transport.is_closing():  # idle past the keep-alive timeout
            self.transport.close()

    def _body_too_slow(self) -> None:
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

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
