"""Real processes: `emrtasks serve` on a free loopback port and the CLI, against a real database."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """One `emrtasks serve` process; start, kill and start again on the same database and port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.upgraded = False

    def cli(self, *args: str) -> dict[str, str]:
        if not self.upgraded:  # operator commands never make a database: `db upgrade` does, once
            self.upgraded = True
            self._run("db", "upgrade")
        return json.loads(self._run(*args))

    def _run(self, *args: str) -> bytes:
        done = subprocess.run(
            [sys.executable, "-m", "emrtasks.cli", *args],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def connect(
        self, emr: str, config: dict[str, object], *, name: str = "e2e", **options: str
    ) -> dict[str, str]:
        """A new client and one connection of it, made with the CLI; the headers its requests carry."""
        client = self.cli("clients", "create", "--name", name)
        flags = [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", value)]
        connection = self.cli(
            "connections",
            "create",
            "--client-id",
            client["client_id"],
            "--emr",
            emr,
            *flags,
            "--config",
            json.dumps(config),
        )
        return {**client, "access_token": connection["access_token"]}

    def start(self, *options: str) -> None:
        self.starts += 1
        log = open(self.log_dir / f"serve-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emrtasks.cli", "serve", "--port", str(self.port), *options],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("serve did not start:\n" + self.log())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("serve-*.log")))


def wait_for_task(http: httpx.Client, headers: dict[str, str], task_id: str) -> dict[str, object]:
    """The task once it is no longer processing (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task: dict[str, object] = http.get(f"/v1/tasks/{task_id}", headers=headers).json()["task"]
        if task["status"] != "processing":
            return task
        time.sleep(0.05)
    raise AssertionError("the task never finished")


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    env = {
        "EMRTASKS_KEY_FILE": str(tmp_path / "emrtasks.key"),
        **os.environ,
        "EMRTASKS_DATABASE_URL": db_url,
        "EMRTASKS_JOB_LEASE_SECONDS": "2",
        "EMRTASKS_REAPER_INTERVAL_SECONDS": "0.5",
        "EMRTASKS_RETRY_BASE_SECONDS": "0.05",
        "EMRTASKS_RETRY_MAX_SECONDS": "0.5",
        "EMRTASKS_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    found = Service(env, tmp_path)
    yield found
    found.stop()
