"""The SDK's tests: the package from this tree's `src` (no install needed), a real `emrtasks serve` on
loopback with clients made by its CLI, and a webhook receiver on loopback."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

SDK_SRC = Path(__file__).resolve().parents[1] / "src"
if str(SDK_SRC) not in sys.path:
    sys.path.insert(0, str(SDK_SRC))

HAS_SERVER = importlib.util.find_spec("emrtasks") is not None


@dataclass
class Tenant:
    """A client app and one sandbox connection of it (subject_assignee rules), made with the CLI."""

    url: str
    client_id: str
    client_secret: str
    access_token: str

    @property
    def args(self) -> tuple[str, str, str, str]:
        return (self.url, self.client_id, self.client_secret, self.access_token)


class Server:
    """One `emrtasks serve` on a free loopback port, SQLite in a temporary folder, webhooks to loopback."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.env = {
            **os.environ,
            "EMRTASKS_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'emrtasks.db'}",
            "EMRTASKS_KEY_FILE": str(folder / "emrtasks.key"),
            "EMRTASKS_SQLITE_SYNCHRONOUS": "NORMAL",
            "EMRTASKS_WORKER_POLL_SECONDS": "0.1",
            "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
            "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
            "EMRTASKS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.5,1,1,1,1,1",
        }
        self.log_path = folder / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emrtasks.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("serve did not start:\n" + self.log_path.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cli(self, *args: str) -> dict[str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "emrtasks.cli", *args],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        found: dict[str, str] = json.loads(done.stdout)
        return found

    def tenant(self, name: str = "sdk") -> Tenant:
        client = self.cli("clients", "create", "--name", name)
        connection = self.cli(
            "connections",
            "create",
            "--client-id",
            client["client_id"],
            "--emr",
            "sandbox",
            "--rules",
            "subject_assignee",
            "--reference-id",
            f"ref-{name}",
        )
        return Tenant(self.url, client["client_id"], client["client_secret"], connection["access_token"])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not HAS_SERVER:
        pytest.skip("the emrtasks service is not installed here (pip install -e . at the repository root)")
    found = Server(tmp_path_factory.mktemp("sdk-serve"))
    found.start()
    yield found
    found.stop()


@pytest.fixture(scope="session")
def tenant(server: Server) -> Tenant:
    """Shared by the tests that register no webhook URL; each waits for the tasks it creates."""
    return server.tenant("sdk-shared")


@pytest.fixture(scope="session")
def hook_tenant(server: Server) -> Tenant:
    """Shared by the tests that register webhook URLs; each deletes what it registered."""
    return server.tenant("sdk-hooks")


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    """A webhook URL on loopback that answers 200 and keeps every delivery."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for_task(self, task_id: str, timeout: float = 20.0) -> Delivery:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for delivery in self.deliveries:
                    if delivery.event.get("data", {}).get("task_id") == task_id:
                        return delivery
            time.sleep(0.02)
        raise AssertionError(f"no delivery for {task_id}; {len(self.deliveries)} seen")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with found.lock:
                found.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    found.url = f"http://127.0.0.1:{http.server_address[1]}/hooks"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield found
    http.shutdown()
    http.server_close()
