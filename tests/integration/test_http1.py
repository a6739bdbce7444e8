"""The webhook HTTP/1.1 client (`http1.Client`) against real servers on loopback: the request it writes,
connection reuse, answer framing (content-length, chunked, end of connection, 1xx, 204), stale
connections, errors, timeouts, TLS with a chosen server name, and closing.

Each server is a small asyncio server on 127.0.0.1 whose connection handler is scripted per test and
answers with exact bytes, so the tests control framing precisely; it counts connections and records
every request it reads."""

import asyncio
import datetime
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emrtasks.webhooks import http1

# A connection left for the garbage collector to close fails the test.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


@dataclass
class Request:
    line: str
    fields: list[tuple[str, str]]  # as sent: order and case kept
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.fields}


@dataclass
class Peer:
    """One accepted connection, as the server sees it."""

    server: "Server"
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Request] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed the connection

    async def request(self) -> Request | None:
        """The next request, or None when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            self.eof.set()
            return None
        line, *lines = head[:-4].decode("latin-1").split("\r\n")
        fields = [(name, value) for name, _, value in (f.partition(": ") for f in lines)]
        request = Request(line, fields, b"")
        request.body = await self.reader.readexactly(int(request.headers["content-length"]))
        self.requests.append(request)
        self.server.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """Runs `handle` for each connection; the connection is closed when it returns."""

    def __init__(self, handle: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.tls = tls
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self._tasks: list[asyncio.Task] = []

    @property
    def connections(self) -> int:
        return len(self.peers)

    async def __aenter__(self) -> "Server":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()  # a handler still reading sees the end of the connection
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.append(asyncio.current_task())
        peer = Peer(self, reader, writer)
        self.peers.append(peer)
        try:
            await self.handle(peer)
            await peer.close()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.transport.abort()

    def target(self, path: str = "/hook", **changes: object) -> http1.Target:
        fields = {
            "scheme": "http",
            "host": "127.0.0.1",
            "port": self.port,
            "path": path,
            "host_header": f"127.0.0.1:{self.port}",
        }
        return http1.Target(**(fields | changes))


def answer(
    status: str = "200 OK",
    *headers: str,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """An answer's exact bytes; a content-length header is added unless `length` is false."""
    lines = [f"{version} {status}", *headers]
    if length:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answering(*answers: bytes, close: bool = False) -> Handler:
    """Answers each request (on any connection) with the next of `answers`, then closes the connection
    if `close`, else waits for the next request until the client closes it."""
    queue = list(answers)

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(queue.pop(0))
            if close:
                return

    return handle


async def wait(event: asyncio.Event) -> None:
    async with asyncio.timeout(1):
        await event.wait()


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(1):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def client():
    client = http1.Client()
    yield client
    await client.aclose()


async def post(
    client: http1.Client, target: http1.Target, body: bytes = b'{"n":1}', headers: dict[str, str] = HEADERS
) -> http1.Answer:
    """`client.post`, bounded so that a client waiting for bytes that never come fails the test."""
    async with asyncio.timeout(2):
        return await client.post(target, headers, body)


# The request


async def test_a_post_arrives_with_its_request_line_host_headers_length_and_exact_body(client):
    async with Server(answering(answer())) as server:
        body = b'{"type":"task.created","data":{"id":"t_1"}}\r\n\x00\xff'
        target = server.target("/path?q=1", host_header="hooks.example.com")
        result = await post(client, target, body, {"Webhook-Id": "msg_1", "user-agent": "emrtasks/1"})

    assert result.status == 200
    [request] = server.requests
    assert request.line == "POST /path?q=1 HTTP/1.1"
    assert request.fields == [
        ("host", "hooks.example.com"),
        ("Webhook-Id", "msg_1"),
        ("user-agent", "emrtasks/1"),
        ("content-length", str(len(body))),
    ]
    assert request.body == body


async def test_our_host_content_length_and_connection_headers_override_the_callers(client):
    async with Server(answering(answer())) as server:
        headers = {"Host": "evil.test", "Content-Length": "1", "Transfer-Encoding": "chunked", "x-a": "1"}
        await post(client, server.target(), b"abc", headers)

    [request] = server.requests
    assert request.fields == [("host", f"127.0.0.1:{server.port}"), ("x-a", "1"), ("content-length", "3")]
    assert request.body == b"abc"


# Connection reuse


async def test_three_posts_to_one_origin_share_one_connection(client):
    async with Server(answering(*[answer(body=b"ok")] * 3)) as server:
        results = [await post(client, server.target(), f"{i}".encode()) for i in range(3)]

    assert [(r.status, r.body) for r in results] == [(200, b"ok")] * 3
    assert server.connections == 1
    assert [r.body for r in server.requests] == [b"0", b"1", b"2"]


@pytest.mark.parametrize(
    "ending",
    [
        answer("200 OK", "Connection: close"),
        answer("200 OK", "connection: Keep-Alive, Close"),
        answer(version="HTTP/1.0"),
    ],
    ids=["connection close", "connection keep-alive and close", "http/1.0"],
)
@pytest.mark.parametrize("server_closes", [True, False], ids=["server closes", "server leaves it open"])
async def test_an_answer_ending_its_connection_makes_the_next_post_open_a_new_connection(
    client, ending, server_closes
):
    async with Server(answering(ending, ending, close=server_closes)) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())
        if not server_closes:
            await wait(server.peers[0].eof)  # the client closed it

    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2
    assert [len(peer.requests) for peer in server.peers] == [1, 1]


async def test_different_paths_on_one_origin_share_a_connection_but_other_server_names_do_not(client):
    async with Server(answering(*[answer()] * 3)) as server:
        await post(client, server.target("/a"))
        await post(client, server.target("/b"))
        await post(client, server.target("/a", server_name="other.test"))

    assert server.connections == 2


async def test_a_connection_idle_longer_than_idle_seconds_is_not_reused():
    client = http1.Client(idle_seconds=0)
    async with Server(answering(answer(), answer())) as server:
        await post(client, server.target())
        await post(client, server.target())
        await wait(server.peers[0].eof)
        await client.aclose()

    assert server.connections == 2


async def test_concurrent_posts_use_their_own_connections_and_at_most_max_idle_stay_open():
    client = http1.Client(max_idle_per_origin=1)
    all_arrived = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.request()
        if len(server.requests) == 3:
            all_arrived.set()
        await wait(all_arrived)  # no answer before all three are in flight
        await peer.send(answer())
        while await peer.request() is not None:
            await peer.send(answer())

    async with Server(handle) as server:
        results = await asyncio.gather(*(post(client, server.target()) for _ in range(3)))
        assert [r.status for r in results] == [200] * 3
        assert server.connections == 3
        await until(lambda: sum(peer.eof.is_set() for peer in server.peers) == 2)  # over the limit
        [kept] = [peer for peer in server.peers if not peer.eof.is_set()]
        await post(client, server.target())
        await client.aclose()

    assert server.connections == 3
    assert len(kept.requests) == 2


# Answer bodies


async def test_a_long_content_length_body_keeps_its_first_1024_bytes_and_the_connection(client):
    long_body = bytes(range(256)) * 40  # 10 240 bytes
    async with Server(answering(answer(body=long_body), answer(body=b"second"))) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert first.body == long_body[:1024]
    assert second.body == b"second"
    assert server.connections == 1


@pytest.mark.parametrize(
    ("size", "connections"),
    [(1024 + 64 * 1024, 1), (1024 + 64 * 1024 + 1, 2)],
    ids=["64 KB past the kept bytes: drained", "over 64 KB past the kept bytes: closed"],
)
async def test_a_content_length_body_is_drained_up_to_64_kb_past_the_kept_bytes(client, size, connections):
    huge_body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    async with Server(answering(answer(body=huge_body), answer(body=b"second"))) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert first.body == huge_body[:1024]
    assert second.body == b"second"
    assert server.connections == connections


@pytest.mark.parametrize(
    ("sizes", "connections"),
    [([4096] * 16 + [1024], 1), ([4096] * 16 + [1024, 1], 2)],
    ids=["64 KB past the kept bytes: drained", "over 64 KB past the kept bytes: closed"],
)
async def test_a_chunked_body_is_drained_up_to_64_kb_past_the_kept_bytes(client, sizes, connections):
    chunks = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    framed = answer("200 OK", "transfer-encoding: chunked", length=False)
    framed += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    async with Server(answering(framed, answer(body=b"second"))) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert first.body == b"".join(chunks)[:1024]
    assert second.body == b"second"
    assert server.connections == connections


async def test_a_chunked_body_with_an_extension_and_a_trailer_is_reassembled_and_the_connection_reused(
    client,
):
    chunks = [b"a" * 700, b"b" * 500, b"c" * 300]
    chunked = b"".join(
        [
            b"%x;name=value\r\n" % len(chunks[0]) + chunks[0] + b"\r\n",
            b"%X\r\n" % len(chunks[1]) + chunks[1] + b"\r\n",
            b"%x\r\n" % len(chunks[2]) + chunks[2] + b"\r\n",
            b"0\r\nx-checksum: abc\r\nx-other: 1\r\n\r\n",
        ]
    )
    framed = answer("200 OK", "Transfer-Encoding: chunked", length=False) + chunked
    async with Server(answering(framed, answer(body=b"second"))) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert first.body == b"".join(chunks)[:1024]
    assert first.headers["transfer-encoding"] == "chunked"
    assert second.body == b"second"
    assert server.connections == 1


async def test_a_short_chunked_body_is_kept_whole(client):
    framed = (
        answer("200 OK", "transfer-encoding: chunked", length=False) + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with Server(answering(framed)) as server:
        result = await post(client, server.target())

    assert result.body == b"abcde"


async def test_a_body_ending_with_the_connection_is_read_and_the_next_post_uses_a_new_connection(client):
    long_body = b"z" * 3000

    async def handle(peer: Peer) -> None:
        connection = server.connections
        await peer.request()
        if connection == 1:
            await peer.send(answer(body=long_body, length=False))  # left open: the client must end it
            assert await peer.request() is None
        else:
            await peer.send(answer(body=b"short", length=False))  # ended by closing

    async with Server(handle) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert first.body == long_body[:1024]
    assert second.body == b"short"
    assert server.connections == 2
    assert [len(peer.requests) for peer in server.peers] == [1, 1]


async def test_a_204_answer_has_no_body_and_keeps_the_connection(client):
    async with Server(answering(answer("204 No Content", length=False), answer(body=b"ok"))) as server:
        first = await post(client, server.target())
        second = await post(client, server.target())

    assert (first.status, first.body) == (204, b"")
    assert second.body == b"ok"
    assert server.connections == 1


async def test_informational_answers_before_the_final_one_are_skipped(client):
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    )
    async with Server(answering(interim + answer("202 Accepted", body=b"queued"))) as server:
        result = await post(client, server.target())

    assert (result.status, result.body) == (202, b"queued")
    assert "link" not in result.headers


# Headers


async def test_header_names_are_lower_cased_and_retry_after_is_readable(client):
    async with Server(
        answering(
            answer(
                "503 Service Unavailable",
                "Retry-After: 120",
                "X-Request-ID:  abc ",
                "Content-Type: text/plain",
            )
        )
    ) as server:
        result = await post(client, server.target())

    assert result.status == 503
    assert result.headers["retry-after"] == "120"
    assert result.headers["x-request-id"] == "abc"
    assert set(result.headers) == {"retry-after", "x-request-id", "content-type", "content-length"}


# Stale connections


def closing_after_the_first_answer(closed: asyncio.Event, abruptly: bool) -> Handler:
    """Answers "from <connection number>"; the first connection is closed after its first answer, though
    the answer (HTTP/1.1 with content-length) let the client keep it; `abruptly`: without TLS's
    close_notify."""

    async def handle(peer: Peer) -> None:
        connection = peer.server.connections
        await peer.request()
        await peer.send(answer(body=f"from {connection}".encode()))
        if connection == 1:
            if abruptly:
                peer.writer.transport.abort()
            else:
                await peer.close()
            closed.set()
            return
        while await peer.request() is not None:
            await peer.send(answer(body=f"from {connection}".encode()))

    return handle


@pytest.mark.parametrize("abruptly", [False, True], ids=["closed", "aborted"])
async def test_a_connection_the_server_closed_while_idle_is_replaced_by_a_new_one(client, abruptly):
    closed = asyncio.Event()
    async with Server(closing_after_the_first_answer(closed, abruptly)) as server:
        first = await post(client, server.target())
        await wait(closed)
        second = await post(client, server.target())
        third = await post(client, server.target())

    assert (first.body, second.body, third.body) == (b"from 1", b"from 2", b"from 2")
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one(client):
    async def handle(peer: Peer) -> None:
        connection = server.connections
        await peer.request()
        await peer.send(answer(body=f"from {connection}".encode()))
        if connection == 1:
            await peer.request()  # read, but closed without an answer
            return
        while await peer.request() is not None:
            await peer.send(answer())

    async with Server(handle) as server:
        first = await post(client, server.target(), b"1")
        second = await post(client, server.target(), b"2")

    assert (first.body, second.body) == (b"from 1", b"from 2")
    assert server.connections == 2
    assert [[r.body for r in peer.requests] for peer in server.peers] == [[b"1", b"2"], [b"2"]]


async def test_an_answer_sent_on_an_idle_connection_is_not_taken_for_the_next_posts_answer(client):
    closed = asyncio.Event()

    async def handle(peer: Peer) -> None:
        connection = server.connections
        await peer.request()
        await peer.send(answer(body=f"from {connection}".encode()))
        if connection == 1:  # as some servers do when an idle keep-alive connection times out
            await peer.send(answer("408 Request Timeout", "Connection: close"))
            await peer.close()
            closed.set()
            return
        while await peer.request() is not None:
            await peer.send(answer())

    async with Server(handle) as server:
        await post(client, server.target())
        await wait(closed)
        await asyncio.sleep(0.01)  # the 408 and the end of the connection reach the client
        second = await post(client, server.target())

    assert (second.status, second.body) == (200, b"from 2")
    assert server.connections == 2


async def test_a_reused_connection_closed_after_part_of_an_answer_is_not_retried(client):
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer())
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-")

    async with Server(handle) as server:
        await post(client, server.target())
        with pytest.raises(http1.SendError, match="closed before an answer"):
            await post(client, server.target())

    assert server.connections == 1


async def _reset(peer: Peer) -> None:
    """Close with a TCP reset, as a crashing server does."""
    sock = peer.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.writer.transport.abort()


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab", b"HTTP/1.1 100 Continue\r\n\r\n"],
    ids=["reset-mid-body", "reset-after-100-continue"],
)
async def test_a_reused_connection_reset_after_an_answer_began_is_not_sent_again(client, partial):
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer())
        await peer.request()
        await peer.send(partial)
        await asyncio.sleep(0.05)
        await _reset(peer)

    async with Server(handle) as server:
        await post(client, server.target())
        with pytest.raises(http1.SendError):
            await post(client, server.target())

    assert len(server.requests) == 2  # the second was heard and answered in part: never sent twice


# Errors


async def test_a_refused_connection_raises_send_error(client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = http1.Target("http", "127.0.0.1", port, "/hook", f"127.0.0.1:{port}")

    with pytest.raises(http1.SendError, match="ConnectionRefusedError"):
        await post(client, target)


async def test_a_non_http_answer_raises_send_error(client):
    async with Server(answering(b"hello\r\n\r\n")) as server:
        with pytest.raises(http1.SendError, match=r"not HTTP/1\.1"):
            await post(client, server.target())


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n",
    ],
)
async def test_a_malformed_status_line_or_header_raises_send_error(client, head):
    async with Server(answering(head)) as server:
        with pytest.raises(http1.SendError, match=r"not HTTP/1\.1"):
            await post(client, server.target())


async def test_a_malformed_content_length_raises_send_error(client):
    async with Server(answering(answer("200 OK", "content-length: 1, 2", length=False))) as server:
        with pytest.raises(http1.SendError, match="content-length is malformed"):
            await post(client, server.target())


async def test_a_new_connection_closed_without_an_answer_raises_send_error(client):
    async def handle(peer: Peer) -> None:
        await peer.request()

    async with Server(handle) as server:
        with pytest.raises(http1.SendError, match="closed before an answer"):
            await post(client, server.target())

    assert server.connections == 1


async def test_answer_headers_over_64_kb_raise_send_error(client):
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-filler-%05d: %s\r\n" % (i, b"v" * 100) for i in range(700))
    async with Server(answering(head + b"content-length: 0\r\n\r\n")) as server:
        with pytest.raises(http1.SendError, match="over 64 KB"):
            await post(client, server.target())


async def test_a_truncated_content_length_body_raises_send_error(client):
    truncated = answer("200 OK", "content-length: 100", length=False) + b"only part"
    async with Server(answering(truncated, close=True)) as server:
        with pytest.raises(http1.SendError, match="closed in the middle of the answer"):
            await post(client, server.target())


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-3\r\nabc\r\n0\r\n\r\n"],
    ids=["not hex", "longer than its size", "negative"],
)
async def test_a_malformed_chunk_raises_send_error(client, chunks):
    framed = answer("200 OK", "transfer-encoding: chunked", length=False) + chunks
    async with Server(answering(framed)) as server:
        with pytest.raises(http1.SendError, match="malformed chunk"):
            await post(client, server.target())


async def test_a_switch_of_protocols_raises_send_error(client):
    async with Server(answering(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")) as server:
        with pytest.raises(http1.SendError, match="switched protocols"):
            await post(client, server.target())


# Timeouts and cancellation


async def test_a_server_that_never_answers_times_out_and_the_connection_is_closed(client):
    received = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.request()
        received.set()
        assert await peer.request() is None

    async with Server(handle) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await post(client, server.target())
        assert received.is_set()
        await wait(server.peers[0].eof)


async def test_a_timeout_on_a_reused_connection_closes_it_and_the_next_post_uses_a_new_one(client):
    async def handle(peer: Peer) -> None:
        connection = server.connections
        await peer.request()
        await peer.send(answer(body=f"from {connection}".encode()))
        if connection == 1:
            await peer.request()  # never answered
            assert await peer.request() is None
            return
        while await peer.request() is not None:
            await peer.send(answer())

    async with Server(handle) as server:
        await post(client, server.target())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await post(client, server.target())
        await wait(server.peers[0].eof)
        third = await post(client, server.target())

    assert third.body == b"from 2"
    assert server.connections == 2


# Line breaks


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/hook", {"x-a": "1\r\nx-injected: 1"}),
        ("/hook", {"x-a": "1\nx-injected: 1"}),
        ("/hook", {"x-a": "1\rx-injected: 1"}),
        ("/hook", {"x-a\r\nx-injected": "1"}),
        ("/hook\r\nx-injected:1", {}),
        ("/hook\n", {}),
        ("/hook\r\nx-injected: 1", {}),
        ("/hooks/café\nmenu", {}),
        ("/hook\x00", {}),
        ("/hook", {"x-a": "1\x00"}),
    ],
    ids=[
        "crlf in a value",
        "lf in a value",
        "cr in a value",
        "crlf in a name",
        "crlf in the path",
        "lf in the path",
        "crlf in a path with a space",
        "lf in a non-ascii path",
        "nul in the path",
        "nul in a value",
    ],
)
async def test_a_line_break_or_nul_in_a_header_or_the_path_raises_value_error_and_sends_nothing(
    client, path, headers
):
    async with Server(answering(answer())) as server:
        with pytest.raises(ValueError, match="line break or NUL"):
            await post(client, server.target(path), b"{}", headers)
        await post(client, server.target())  # then a good one, the only one the server sees

    assert server.connections == 1
    assert [r.line for r in server.requests] == ["POST /hook HTTP/1.1"]


async def test_a_path_with_spaces_or_non_ascii_is_percent_encoded(client):
    async with Server(answering(answer())) as server:
        await post(client, server.target("/hooks/café menu?q=a b"))

    assert server.requests[0].line == "POST /hooks/caf%C3%A9%20menu?q=a%20b HTTP/1.1"


# TLS


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A self-signed CA and a server certificate it signed for the DNS name `hooks.test`."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emrtasks test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def tls_server_context(certificates: Certificates, names: list[str | None]) -> ssl.SSLContext:
    """A server context that records the SNI name of every handshake in `names`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert, certificates.key)
    context.sni_callback = lambda _sslobj, name, _context: names.append(name)
    return context


@pytest.fixture
async def tls_client(certificates: Certificates):
    client = http1.Client(ssl_context=ssl.create_default_context(cafile=certificates.ca))
    yield client
    await client.aclose()


def tls_target(server: Server, server_name: str) -> http1.Target:
    return server.target(scheme="https", server_name=server_name, host_header=server_name)


async def test_tls_verifies_the_certificate_for_the_server_name_and_sends_it_as_sni(tls_client, certificates):
    names: list[str | None] = []
    context = tls_server_context(certificates, names)
    async with Server(answering(*[answer(body=b"secure")] * 2), context) as server:
        first = await post(tls_client, tls_target(server, "hooks.test"))
        second = await post(tls_client, tls_target(server, "hooks.test"))

    assert (first.status, first.body, second.body) == (200, b"secure", b"secure")
    assert names == ["hooks.test"]
    assert server.connections == 1
    assert server.requests[0].headers["host"] == "hooks.test"


async def test_tls_with_a_certificate_for_another_name_raises_send_error(tls_client, certificates):
    names: list[str | None] = []
    async with Server(answering(answer()), tls_server_context(certificates, names)) as server:
        with pytest.raises(http1.SendError, match="TLS: CERTIFICATE_VERIFY_FAILED"):
            await post(tls_client, tls_target(server, "other.test"))

    assert names == ["other.test"]
    assert server.requests == []


async def test_tls_with_the_system_trust_store_rejects_an_unknown_ca(client, certificates):
    names: list[str | None] = []
    async with Server(answering(answer()), tls_server_context(certificates, names)) as server:
        with pytest.raises(http1.SendError, match="TLS: CERTIFICATE_VERIFY_FAILED"):
            await post(client, tls_target(server, "hooks.test"))

    assert names == ["hooks.test"]
    assert server.requests == []


@pytest.mark.parametrize("abruptly", [False, True], ids=["with close_notify", "without close_notify"])
async def test_tls_a_connection_the_server_closed_while_idle_is_replaced_by_a_new_one(
    tls_client, certificates, abruptly
):
    closed = asyncio.Event()
    context = tls_server_context(certificates, [])
    async with Server(closing_after_the_first_answer(closed, abruptly), context) as server:
        first = await post(tls_client, tls_target(server, "hooks.test"))
        await wait(closed)
        second = await post(tls_client, tls_target(server, "hooks.test"))

    assert (first.body, second.body) == (b"from 1", b"from 2")
    assert server.connections == 2


# Closing


async def test_aclose_closes_idle_connections():
    client = http1.Client()
    async with Server(answering(answer(), answer())) as server:
        await post(client, server.target("/a"))
        await post(client, server.target("/b", server_name="other.test"))
        assert server.connections == 2
        assert not any(peer.eof.is_set() for peer in server.peers)
        await client.aclose()
        for peer in server.peers:
            await wait(peer.eof)
