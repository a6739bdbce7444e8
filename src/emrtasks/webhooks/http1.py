"""The HTTP/1.1 client that sends webhook deliveries: POST only, keep-alive, TLS to a chosen server name.

A delivery is the one outgoing request made for every task, and httpx spent about 0.55 ms of CPU on
each (URL and header models, the connection pool's locks, AnyIO), against 0.05 ms for the same
request written and read on asyncio streams (docs/performance.md). This client does what a
delivery needs and nothing else:

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


_Key = tuple[str, str, int, str | None]
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


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
        self._idle: dict[_Key, list[tuple[float, _Connection]]] = {}
        self._swept = time.monotonic()

    async def post(self, target: Target, headers: Mapping[str, str], body: bytes) -> Answer:
        request = _encode(target, headers, body)
        key = (target.scheme, target.host, target.port, target.server_name)
        idle = self._take_idle(key)
        if idle is not None:
            try:
                return await self._exchange(key, idle, request, reused=True)
            except _Stale:
                pass  # closed by the server while idle: once more, on a new connection
        try:
            return await self._exchange(key, await self._connect(target), request, reused=False)
        except _Stale as exc:  # not raised for a new connection; kept for the type checker
            raise SendError("the connection closed before an answer") from exc

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for _since, (_reader, writer) in connections:
                writer.transport.abort()
        self._idle.clear()

    async def _connect(self, target: Target) -> _Connection:
        tls: ssl.SSLContext | None = None
        if target.scheme == "https":
            tls = self._ssl or _default_tls()
        try:
            return await asyncio.open_connection(
                target.host,
                target.port,
                ssl=tls,
                server_hostname=(target.server_name or target.host) if tls else None,
                limit=_MAX_HEAD,
            )
        except ssl.SSLError as exc:
            raise SendError(f"TLS: {exc.reason or exc}") from exc
        except OSError as exc:
            raise SendError(f"{type(exc).__name__}: {exc.strerror or exc}") from exc

    async def _exchange(self, key: _Key, connection: _Connection, request: bytes, *, reused: bool) -> Answer:
        reader, writer = connection
        reusable = False
        heard = [False]  # set once any answer (even a 1xx) was read: from then on, never resend
        try:
            writer.write(request)
            await writer.drain()
            answer, reusable = await self._read_answer(reader, reused=reused, heard=heard)
            return answer
        except ssl.SSLError as exc:
            raise SendError(f"TLS: {exc.reason or exc}") from exc
        except OSError as exc:  # reset, broken pipe, unreachable ...
            if reused and isinstance(exc, ConnectionError) and not heard[0] and _quiet(reader):
                raise _Stale from exc  # closed while idle, nothing answered: send it again
            raise SendError(f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        finally:
            if reusable:
                self._put_idle(key, connection)
            else:
                writer.transport.abort()

    async def _read_answer(
        self, reader: asyncio.StreamReader, *, reused: bool, heard: list[bool]
    ) -> tuple[Answer, bool]:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial and not heard[0]:
                    raise _Stale from exc
                raise SendError("the connection closed before an answer") from exc
            except asyncio.LimitOverrunError as exc:
                raise SendError("the answer's headers are over 64 KB") from exc
            heard[0] = True
            version, status, headers = _parse_head(head)
            if status >= 200:
                break
            if status == 101:
                raise SendError("the server switched protocols")
        body, complete = await self._read_body(reader, status, headers)
        persistent = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        return Answer(status, headers, body), complete and persistent

    async def _read_body(
        self, reader: asyncio.StreamReader, status: int, headers: Mapping[str, str]
    ) -> tuple[bytes, bool]:
        """The first `keep` bytes of the body, and whether the whole body was read."""
        if status in (204, 304):
            return b"", True
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                return await self._read_chunked(reader)
            length = headers.get("content-length")
            if length is not None:
                size = _content_length(length)
                kept = await reader.readexactly(min(size, self._keep))
                rest = size - len(kept)
                if rest > _MAX_DRAIN:
                    return kept, False
                await reader.readexactly(rest)
                return kept, True
            kept = b""
            while len(kept) < self._keep:  # delimited by the end of the connection
                chunk = await reader.read(self._keep - len(kept))
                if not chunk:
                    break
                kept += chunk
            return kept, False
        except asyncio.IncompleteReadError as exc:
            raise SendError("the connection closed in the middle of the answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise SendError("a malformed chunk in the answer") from exc

    async def _read_chunked(self, reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        kept = b""
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise SendError("a malformed chunk in the answer") from exc
            if size < 0:
                raise SendError("a malformed chunk in the answer")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return kept, True
            total += size
            if total > self._keep + _MAX_DRAIN:
                return kept, False
            data = await reader.readexactly(size + 2)
            if data[-2:] != b"\r\n":
                raise SendError("a malformed chunk in the answer")
            kept += data[: max(0, min(size, self._keep - len(kept)))]

    def _take_idle(self, key: _Key) -> _Connection | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            since, (reader, writer) = connections.pop()
            if now - since < self._idle_seconds and _quiet(reader) and not writer.is_closing():
                return reader, writer
            writer.transport.abort()
        return None

    def _put_idle(self, key: _Key, connection: _Connection) -> None:
        now = time.monotonic()
        if now - self._swept > self._idle_seconds:
            self._sweep(now)
        connections = self._idle.setdefault(key, [])
        if len(connections) < self._max_idle:
            connections.append((now, connection))
        else:
            connection[1].transport.abort()

    def _sweep(self, now: float) -> None:
        """Close connections idle too long, for origins no longer posted to."""
        self._swept = now
        for key in list(self._idle):
            fresh = []
            for since, (reader, writer) in self._idle[key]:
                if now - since < self._idle_seconds and _quiet(reader):
                    fresh.append((since, (reader, writer)))
                else:
                    writer.transport.abort()
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]


def _quiet(reader: asyncio.StreamReader) -> bool:
    """Nothing arrived on an idle connection: no end of stream, and no bytes (a server that times an
    idle connection out may say so, e.g. with a 408, before closing it; that is no answer of ours)."""
    return not reader.at_eof() and not getattr(reader, "_buffer", b"")


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _encode(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    path = target.path or "/"
    if _FORBIDDEN.intersection(path):
        raise ValueError("a header or the path holds a line break or NUL")
    if not path.isascii() or " " in path:
        path = quote(path, safe=_PATH_SAFE)
    lines = [f"POST {path} HTTP/1.1", f"host: {target.host_header}"]
    for name, value in headers.items():
        if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"content-length: {len(body)}")
    if any(_FORBIDDEN.intersection(line) for line in lines):
        raise ValueError("a header or the path holds a line break or NUL")
    return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + body


_FORBIDDEN = frozenset("\r\n\0")


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    try:
        text = head.decode("latin-1")
        status_line, *fields = text[:-4].split("\r\n")
        version, code, *_reason = status_line.split(" ", 2)
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3:
            raise ValueError(status_line)
        status = int(code)
        headers: dict[str, str] = {}
        for field in fields:
            name, separator, value = field.partition(":")
            if not separator or not name or name != name.strip():
                raise ValueError(field)
            headers[name.lower()] = value.strip()
    except ValueError as exc:
        raise SendError("the answer is not HTTP/1.1") from exc
    if not 100 <= status <= 599:
        raise SendError("the answer is not HTTP/1.1")
    return version, status, headers


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise SendError("the answer's content-length is malformed")
    return int(values.pop())
