"""A minimal keep-alive HTTP/1.1 client over asyncio streams, for the load generator.

Requests are encoded once into bytes and written as they are; a response is read as its head (up to
the blank line), the status from the status line and a body of `content-length` bytes. That is all
the service and the receiver ever send, and it costs a fraction of what a general client does.
"""

import asyncio

_CONTENT_LENGTH = b"content-length:"


class ProtocolError(Exception):
    """A response this client does not understand (no content-length, or a chunked body)."""


def encode_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The whole request as bytes, ready to be written again and again on a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append("content-type: application/json")
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def content_length(head: bytes) -> int:
    """The content-length of a response head; 0 when it has none (a chunked body is refused)."""
    at = head.find(_CONTENT_LENGTH)
    if at < 0:
        lowered = head.lower()
        at = lowered.find(_CONTENT_LENGTH)
        if at < 0:
            if b"transfer-encoding:" in lowered:
                raise ProtocolError("chunked responses are not supported")
            return 0
    end = head.index(b"\r\n", at)
    return int(head[at + len(_CONTENT_LENGTH) : end])


class Connection:
    """One keep-alive connection to 127.0.0.1; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, connect_s: float = 5.0) -> "Connection":
        async with asyncio.timeout(connect_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Write a pre-encoded request; return the response's status and body."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = content_length(head)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


async def call(port: int, method: str, path: str, body: bytes = b"", limit_s: float = 30.0) -> bytes:
    """One request on a fresh connection (control calls, not load); the body of a 2xx answer."""
    connection = await Connection.open(port)
    try:
        async with asyncio.timeout(limit_s):
            status, answer = await connection.request(encode_request(method, path, port, {}, body))
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise ProtocolError(f"{method} {path}: HTTP {status}: {answer[:200]!r}")
    return answer
