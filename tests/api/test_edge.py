"""The HTTP edge, with real sockets on loopback against uvicorn with our protocol, served in a thread:
oversized heads get 431 before being read whole, slow heads and bodies are cut off, idle sockets
are closed, and connections past the cap are refused. Every wait is bounded; none measures speed."""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from emrtasks.api import edge

MARGIN = 5.0  # seconds allowed past a timeout for the loop to act on it, on a busy machine


async def _echo(scope, receive, send):  # type: ignore[no-untyped-def]
    """Reads the whole body, answers its length."""
    assert scope["type"] == "http"
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def _server(limits: edge.EdgeLimits, keep_alive: int = 5) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _echo,
        lifespan="off",
        log_config=None,
        access_log=False,
        http=edge.protocol_class(limits),
        timeout_keep_alive=keep_alive,
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _connect(port: int, timeout: float = 2.0) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return conn


def _read_all(conn: socket.socket, bound: float) -> bytes:
    """Everything the server sends until it closes, within `bound` seconds (fails past it)."""
    conn.settimeout(bound)
    chunks = []
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _closed_within(conn: socket.socket, bound: float) -> bool:
    try:
        _read_all(conn, bound)
    except TimeoutError:
        return False
    return True


def _one_answer(conn: socket.socket) -> bytes:
    """One answer of `_echo` to a request without a body: its head and the body `0`."""
    answer = b""
    while not answer.endswith(b"\r\n\r\n0"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_normal_request_with_a_body_is_answered():
    with _server(edge.EdgeLimits()) as port, _connect(port) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
        answer = _read_all(conn, 5)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"\r\n\r\n5")


def test_a_head_at_the_limit_passes_and_one_byte_more_gets_431():
    limit = 4096
    with _server(edge.EdgeLimits(max_header_bytes=limit)) as port:
        start = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-pad: "
        end = b"\r\n\r\n"
        exact = start + b"a" * (limit - len(start) - len(end)) + end
        assert len(exact) == limit
        # Sent in small pieces, so the end of the head straddles reads.
        with _connect(port) as conn:
            for i in range(0, len(exact), 1000):
                conn.sendall(exact[i : i + 1000])
                time.sleep(0.01)
            assert _read_all(conn, 5).startswith(b"HTTP/1.1 200")
        over = start + b"a" * (limit - len(start) - len(end) + 1) + end
        with _connect(port) as conn:
            conn.sendall(over)
            answer = _read_all(conn, 5)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_a_32_mb_header_is_refused_with_431_before_it_is_read_whole():
    with _server(edge.EdgeLimits()) as port, _connect(port, timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        refused = False
        chunk = b"a" * 65536
        try:
            while sent < 32 * 1024 * 1024:
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            answer = _read_all(conn, 10)
    # Either the 431 reached us, or the connection was closed under us before all 32 MB were taken.
    assert answer.startswith(b"HTTP/1.1 431") or refused, answer[:100]
    assert refused or sent < 32 * 1024 * 1024 or answer.startswith(b"HTTP/1.1 431")


def test_a_slowloris_head_is_cut_off_after_the_header_timeout():
    timeout = 1.5
    with _server(edge.EdgeLimits(header_timeout_seconds=timeout)) as port, _connect(port) as conn:
        began = time.monotonic()
        head = b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 100
        answer = b""
        for byte in head:
            if time.monotonic() - began > timeout + MARGIN:
                break
            try:
                conn.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            conn.settimeout(0.5)  # one byte every half second (faster than the slowloris)
            try:
                answer = conn.recv(1024)
            except TimeoutError:
                continue
            break
        assert time.monotonic() - began < timeout + MARGIN, "the slow head was never cut off"
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_slow_body_is_cut_off_after_the_body_timeout_and_the_app_sees_a_disconnect():
    timeout = 1.5
    with _server(edge.EdgeLimits(body_timeout_seconds=timeout)) as port, _connect(port) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        began = time.monotonic()
        answer = b""
        for _ in range(1000):
            if time.monotonic() - began > timeout + MARGIN:
                break
            try:
                conn.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
            conn.settimeout(0.5)
            try:
                answer = conn.recv(1024)
            except TimeoutError:
                continue
            break
        assert time.monotonic() - began < timeout + MARGIN, "the slow body was never cut off"
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_200_idle_sockets_are_closed_after_the_idle_timeout():
    idle = 1
    with _server(edge.EdgeLimits(), keep_alive=idle) as port:
        sockets = [_connect(port, timeout=5) for _ in range(200)]
        try:
            deadline = time.monotonic() + idle + MARGIN
            for conn in sockets:
                assert _closed_within(conn, max(deadline - time.monotonic(), 0.01)), "an idle socket stayed"
        finally:
            for conn in sockets:
                conn.close()


def test_a_socket_idle_after_an_answer_is_closed_too():
    idle = 1
    with _server(edge.EdgeLimits(), keep_alive=idle) as port, _connect(port) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _closed_within(conn, idle + MARGIN)


def test_connections_past_the_cap_get_503_and_are_closed():
    cap = 5
    with _server(edge.EdgeLimits(max_connections=cap)) as port:
        held = [_connect(port) for _ in range(cap)]
        try:
            # The held ones are accepted (each answers a request, keeping its connection).
            for conn in held:
                conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                conn.settimeout(5)
                assert conn.recv(1024).startswith(b"HTTP/1.1 200")
            with _connect(port) as extra:
                answer = _read_all(extra, 5)
            assert answer.startswith(b"HTTP/1.1 503"), answer
        finally:
            for conn in held:
                conn.close()


@pytest.mark.parametrize("cut", [edge.EdgeLimits(header_timeout_seconds=0.5)])
def test_a_fast_request_after_a_cut_off_one_is_served(cut):
    """A refusal closes one connection; the server goes on serving others."""
    with _server(cut) as port:
        with _connect(port) as slow:
            slow.sendall(b"GET / HT")
            assert _closed_within(slow, 0.5 + MARGIN)
        with _connect(port) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            assert _read_all(conn, 5).startswith(b"HTTP/1.1 200")


def test_a_connection_that_keeps_sending_outlives_the_idle_timeout():
    """The idle timer is armed once per connection and waits again while requests keep coming: a busy
    keep-alive connection is never closed under a client that is still using it."""
    idle = 1
    with _server(edge.EdgeLimits(), keep_alive=idle) as port, _connect(port, timeout=5) as conn:
        until = time.monotonic() + idle * 2.5
        answered = 0
        while time.monotonic() < until:
            conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert _one_answer(conn).startswith(b"HTTP/1.1 200"), "the connection was closed while in use"
            answered += 1
            time.sleep(idle / 4)
        assert answered >= 8
        assert _closed_within(conn, idle + MARGIN), "the connection stayed open once it was left idle"


def test_a_head_in_pieces_then_a_quick_one_on_the_same_connection_are_both_served():
    with _server(edge.EdgeLimits(header_timeout_seconds=1.0)) as port, _connect(port, timeout=5) as conn:
        for piece in (b"GET / HTTP/1.1\r\n", b"host: x\r\n", b"\r\n"):
            conn.sendall(piece)
            time.sleep(0.3)  # each piece in a read of its own; the head completes within its timeout
        assert _one_answer(conn).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # past the header timeout of the first request: nothing may fire for it now
        conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert _read_all(conn, 5).startswith(b"HTTP/1.1 200")
