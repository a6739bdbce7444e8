"""A real `emrtasks serve` on SQLite: its files are its owner's alone, its edge refuses an oversized
head and a silent socket, and every API answer says `Cache-Control: no-store`."""

import os
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e


@pytest.fixture
def sqlite_service(tmp_path: Path):
    os.umask(0o022)  # what a default shell gives: files readable by everyone unless we say otherwise
    env = {
        **os.environ,
        "EMRTASKS_KEY_FILE": str(tmp_path / "emrtasks.key"),
        "EMRTASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'emrtasks.db'}",
        "EMRTASKS_SQLITE_SYNCHRONOUS": "NORMAL",
        "EMRTASKS_MAX_HEADER_BYTES": "8192",
        "EMRTASKS_KEEP_ALIVE_SECONDS": "1",
    }
    env.pop("EMRTASKS_ENCRYPTION_KEY", None)
    found = Service(env, tmp_path)
    found.start()
    yield found
    found.stop()


def test_the_database_its_wal_and_shm_and_the_key_file_are_created_0600(sqlite_service, tmp_path):
    sqlite_service.cli("clients", "create", "--name", "modes")  # a write: the WAL exists now
    names = ["emrtasks.db", "emrtasks.db-wal", "emrtasks.db-shm", "emrtasks.key"]
    for name in names:
        path = tmp_path / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{name}: {oct(path.stat().st_mode)}"


def test_a_too_large_head_gets_431_and_a_silent_socket_is_closed(sqlite_service):
    with socket.create_connection(("127.0.0.1", sqlite_service.port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 10_000 + b"\r\n\r\n")
        assert conn.recv(1024).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", sqlite_service.port), timeout=10) as conn:
        began = time.monotonic()
        assert conn.recv(1024) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - began < 10


def test_every_api_answer_says_no_store_but_the_jwks_is_cacheable(sqlite_service):
    client = sqlite_service.cli("clients", "create", "--name", "cache")
    with httpx.Client(base_url=sqlite_service.url, timeout=10) as http:
        for answer in (
            http.get("/healthz"),
            http.get("/v1/tasks/nope", headers={"client_id": client["client_id"]}),
            http.post("/v1/tasks", content=b"{}", headers={"content-type": "application/json"}),
            http.get("/openapi.json"),
        ):
            assert answer.headers.get("cache-control") == "no-store", answer.request.url
        jwks = http.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
        assert "public" in jwks.headers["cache-control"]
