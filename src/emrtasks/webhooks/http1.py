"""The HTTP/1.1 client that sends webhook deliveries: POST only, keep-alive, TLS to a chosen server name.

A delivery is the one outgoing request made for every task, and httpx spent about 0.55 ms of CPU on
each (URL and header models, the connection pool's locks, AnyIO), against about 0.13 ms for the same
request framed by h11 on an asyncio protocol of our own (docs/performance.md). This client owns the
pool and where it connects; h11 writes the request and reads the answer. It does what a delivery
needs and nothing else:

- It connects where it is told (the address the SSRF guard checked) and, over TLS, verifies the
  certificate against the name it is told (the host of the webhook URL), which is also sent as SNI.
- One request at a time per connection; an idle connection is reused for the same origin until
  the server closes it or it has been idle for `idle_seconds`. A request on a reused connection that
  the server had closed while it was idle (nothing answered) is sent again on a new connection,
  once; receivers deduplicate on `webhook-id` in any case.
- The answer's status and headers are read; of its body, the first `keep` bytes are kept and the
  rest read and dropped up to 64 KB (then the connection is closed instead of reused). Bodies framed
  by content-length, chunked transfer coding, or the end of the connection are understood;
  informational (1xx) answers are skipped. Redirects are answers like any other: never followed.
- No proxies, no cookies, no compression, no retries of its own beyond the stale connection.
  Timeouts belong to the caller (`asyncio.timeout` around `post`): a cancelled exchange closes its
  connection.
"""

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import h11

_MAX_HEAD = 64 * 1024  # status line and headers of an answer
_MAX_DRAIN = 64 * 1024  # body bytes read past `keep` to keep a connection reusable
_PATH_SAFE = "!#$%&'()*+,-./:;=?@[]~_"


class SendError(Exception):
    """The request could not be sent, or no well-formed answer came back. The message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str  # "http" or "https"
    host: str  # where to connect: an IP address, or a name
    port: int
    path: str  # path and query, "/" at least
    host_header: str
    server_name: str | None = None  # TLS: the name sent as SNI and verified in the certificate


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names; of a repeated header, the last
    body: bytes  # at most `keep` bytes


class _Stale(Exception):
    """A reused connection was closed before it answered."""


class _Wire(asyncio.Protocol):
    """One connection's bytes: what arrived and not yet read, the end of the stream, write pressure.
    Owning it (not asyncio's streams) is what lets an idle connection be checked for bytes that came
    while nobody was reading."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._ended = False
        self._lost: BaseException | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received += data
        self._wake_reader()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._lost = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(exc or ConnectionResetError("Connection lost"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def quiet(self) -> bool:
        """Nothing arrived on an idle connection: no end of stream, and no bytes (a server that times
        an idle connection out may say so, e.g. with a 408, before closing it; that is no answer of ours)."""
        return not self._received and not self._ended

    async def send(self, data: bytes) -> None:
        if self._lost is not None or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("Connection lost")
        self.transport.write(data)
        if self._writable is not None:
            await self._writable

    async def receive(self) -> bytes:
        """The bytes that arrived since the last call, waiting for some; b"" at the end of the stream."""
        while not self._received and not self._ended:
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
        if self._received:
            data = bytes(self._received)
            self._received.clear()
            return data
        if self._lost is not None:
            raise self._lost
        return b""

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)


_Key = tuple[str, str, int, str | None]


class Client:
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keep: int = 1024,
        idle_seconds: float = 30.0,
        max_idle_per_origin: int = 32,
    ) -> None:
        self._ssl = ssl_context
        self._keep = keep
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle_per_origin
        self._idle: dict[_Key, list[tuple[float, _Wire]]] = {}
        self._swept = time.monotonic()

    async def post(self, target: Target, headers: Mapping[str, str], body: bytes) -> Answer:
        request = _encode(target, headers, body)
        exchange = _Exchange(self._keep, request)  # refuses what h11 cannot send, before connecting
        key = (target.scheme, target.host, target.port, target.server_name)
        idle = self._take_idle(key)
        if idle is not None:
            try:
                return await self._exchange(key, idle, exchange, reused=True)
            except _Stale:  # closed by the server while idle: once more, on a new connection
                exchange = _Exchange(self._keep, request)
        try:
            return await self._exchange(key, await self._connect(target), exchange, reused=False)
        except _Stale as exc:  # not raised for a new connection; kept for the type checker
            raise SendError("the connection closed before an answer") from exc

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for _since, wire in connections:
                wire.abort()
        self._idle.clear()

    async def _connect(self, target: Target) -> _Wire:
        tls: ssl.SSLContext | None = None
        if target.scheme == "https":
            tls = self._ssl or _default_tls()
        try:
            _transport, wire = await asyncio.get_running_loop().create_connection(
                _Wire,
                target.host,
                target.port,
                ssl=tls,
                server_hostname=(target.server_name or target.host) if tls else None,
            )
        except ssl.SSLError as exc:
            raise SendError(f"TLS: {exc.reason or exc}") from exc
        except OSError as exc:
            raise SendError(f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        return wire

    async def _exchange(self, key: _Key, wire: _Wire, exchange: "_Exchange", *, reused: bool) -> Answer:
        reusable = False
        try:
            await wire.send(exchange.request)
            answer, reusable = await exchange.answer(wire, reused=reused)
            return answer
        except ssl.SSLError as exc:
            raise SendError(f"TLS: {exc.reason or exc}") from exc
        except OSError as exc:  # reset, broken pipe, unreachable ...
            if reused and isinstance(exc, ConnectionError) and not exchange.heard and wire.quiet():
                raise _Stale from exc  # closed while idle, nothing answered: send it again
            raise SendError(f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        finally:
            if reusable:
                self._put_idle(key, wire)
            else:
                wire.abort()

    def _take_idle(self, key: _Key) -> _Wire | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            since, wire = connections.pop()
            if now - since < self._idle_seconds and wire.quiet() and not _closing(wire):
                return wire
            wire.abort()
        return None

    def _put_idle(self, key: _Key, wire: _Wire) -> None:
        now = time.monotonic()
        if now - self._swept > self._idle_seconds:
            self._sweep(now)
        connections = self._idle.setdefault(key, [])
        if len(connections) < self._max_idle:
            connections.append((now, wire))
        else:
            wire.abort()

    def _sweep(self, now: float) -> None:
        """Close connections idle too long, for origins no longer posted to."""
        self._swept = now
        for key in list(self._idle):
            fresh = []
            for since, wire in self._idle[key]:
                if now - since < self._idle_seconds and wire.quiet():
                    fresh.append((since, wire))
                else:
                    wire.abort()
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]


def _closing(wire: _Wire) -> bool:
    return wire.transport is None or wire.transport.is_closing()


class _Exchange:
    """One request and its answer, framed by h11: the answer's status and headers, the first `keep`
    bytes of its body, the rest drained up to `_MAX_DRAIN` (past that the connection is closed
    instead of reused)."""

    def __init__(self, keep: int, request: "_Request") -> None:
        self._keep = keep
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        try:
            self.request = b"".join(
                self._h11.send(event) or b""
                for event in (
                    h11.Request(method="POST", target=request.path, headers=request.fields),
                    h11.Data(data=request.body),
                    h11.EndOfMessage(),
                )
            )
        except h11.LocalProtocolError as exc:
            raise ValueError(f"a header or the path cannot be sent: {exc}") from exc
        self._response: h11.Response | None = None
        self._received = 0  # bytes of the answer so far
        self._ended = False
        self.heard = False  # set once any byte of an answer came: from then on, never resend

    async def answer(self, wire: _Wire, *, reused: bool) -> tuple[Answer, bool]:
        response = await self._head(wire, reused=reused)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers}
        kept, complete = await self._body(wire, response.status_code, headers)
        reusable = complete and self._h11.their_state is h11.DONE and not self._h11.trailing_data[0]
        return Answer(response.status_code, headers, kept), reusable

    async def _head(self, wire: _Wire, *, reused: bool) -> h11.Response:
        while True:
            event = await self._next(wire, reused=reused)
            if isinstance(event, h11.Response):
                # h11 bounds a head that is still arriving; one that came whole is bounded here.
                if self._received - len(self._h11.trailing_data[0]) > _MAX_HEAD:
                    raise SendError("the answer's headers are over 64 KB")
                self._response = event
                return event

    async def _body(self, wire: _Wire, status: int, headers: Mapping[str, str]) -> tuple[bytes, bool]:
        """The first `keep` bytes of the body, and whether the whole body was read."""
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        framed = status in (204, 304) or length is not None or chunked  # else: ends with the connection
        if not framed or (length is not None and int(length) - self._keep > _MAX_DRAIN):
            limit = self._keep  # never reusable (ends with the connection, or too long to drain)
        else:
            limit = self._keep + _MAX_DRAIN
        kept = bytearray()
        total = 0
        while True:
            event = await self._next(wire, reused=False)
            if isinstance(event, h11.EndOfMessage):
                return bytes(kept), framed
            if isinstance(event, h11.Data):
                total += len(event.data)
                kept += event.data[: max(0, self._keep - len(kept))]
                if total > limit or (not framed and total >= limit):
                    return bytes(kept), False

    async def _next(self, wire: _Wire, *, reused: bool) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise SendError(self._malformed(exc)) from exc
            if event is h11.NEED_DATA:
                await self._receive(wire, reused=reused)
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                raise SendError("the connection closed in the middle of the answer")
            return event  # type: ignore[return-value]

    async def _receive(self, wire: _Wire, *, reused: bool) -> None:
        data = await wire.receive()
        if data:
            self.heard = True
            self._received += len(data)
        elif self._response is None:  # the end of the stream, before a whole answer
            if reused and not self.heard:
                raise _Stale
            raise SendError("the connection closed before an answer")
        else:
            self._ended = True  # h11 decides: the end of the body, or a body cut short
        self._h11.receive_data(data)

    def _malformed(self, exc: h11.RemoteProtocolError) -> str:
        reason = str(exc).lower()
        if self._response is not None:
            if self._ended:
                return "the connection closed in the middle of the answer"
            return "a malformed chunk in the answer"
        if "switch" in reason:
            return "the server switched protocols"
        if "too long" in reason:
            return "the answer's headers are over 64 KB"
        if "content-length" in reason:
            return "the answer's content-length is malformed"
        return "the answer is not HTTP/1.1"


@dataclass(frozen=True)
class _Request:
    path: str
    fields: list[tuple[str, str]]
    body: bytes


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _encode(target: Target, headers: Mapping[str, str], body: bytes) -> _Request:
    """The request: our host and content-length, the caller's other headers in their order and case.
    A line break or NUL anywhere is refused here, before anything is sent."""
    path = target.path or "/"
    if _FORBIDDEN.intersection(path):
        raise ValueError("a header or the path holds a line break or NUL")
    if not path.isascii() or " " in path:
        path = quote(path, safe=_PATH_SAFE)
    fields = [("host", target.host_header)]
    for name, value in headers.items():
        if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
            fields.append((name, value))
    fields.append(("content-length", str(len(body))))
    if any(_FORBIDDEN.intersection(name) or _FORBIDDEN.intersection(value) for name, value in fields):
        raise ValueError("a header or the path holds a line break or NUL")
    return _Request(path, fields, body)


_FORBIDDEN = frozenset("\r\n\0")
