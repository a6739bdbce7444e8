"""The processes of one benchmark run and what is measured from outside them.

`Stack` starts `python -m emrtasks serve` pinned to core 0 on a fresh database (a SQLite file in a temp
dir, or a scratch PostgreSQL database), creates the client and the sandbox connection with the CLI,
registers the receiver's URL, starts the receiver, sends one task end to end (the warm-up), and runs
load generator phases pinned to core 1. It samples the service's RSS from a thread
(/proc/<pid>/status) and the CPU of the service and the receiver around each phase
(/proc/<pid>/stat). All traffic stays on 127.0.0.1.
"""

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
# Its own name per run of bench scripts side by side (BENCH_PG_DB), else they drop each other's.
PG_SCRATCH_DB = os.environ.get("BENCH_PG_DB", "emrtasks_bench")
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_SCRATCH_DB}"
SERVICE_CORE, LOAD_CORE = 0, 1
TASK_BODY = {
    "subject": "Bench",
    "description": "Benchmark task",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def pinned(command: list[str], core: int) -> list[str]:
    """The command under `taskset -c core` when taskset exists and the machine has that core."""
    if shutil.which("taskset") and core < (os.cpu_count() or 1):
        return ["taskset", "-c", str(core), *command]
    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A keep-alive HTTP/1.1 server that answers every request 200, verifying nothing: the cheapest
# receiver, for measuring the sending side alone (bench/inprocess.py, bench/micro.py).
_ANSWERING_RECEIVER = """
import asyncio, sys
OK = b"HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            size = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
            await reader.readexactly(size)
            writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


@contextlib.contextmanager
def answering_receiver() -> Iterator[int]:
    """Run `_ANSWERING_RECEIVER` in a child process on a free loopback port; yields the port."""
    port = free_port()
    process = subprocess.Popen([PYTHON, "-c", _ANSWERING_RECEIVER, str(port)])
    try:
        time.sleep(0.3)  # it binds its port
        yield port
    finally:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def status_kb(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM`-style line of /proc/<pid>/status, in kB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def http_json(
    port: int,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One JSON request to 127.0.0.1 (set-up and control, not load)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every `every` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every = every
        self.peak_kb = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                rss = status_kb(self.pid, "VmRSS")
            except OSError:
                return
            self.samples += 1
            self.peak_kb = max(self.peak_kb, rss)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def recreate_pg_database(name: str = PG_SCRATCH_DB) -> None:
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"))


def drop_pg_database(name: str = PG_SCRATCH_DB) -> None:
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def pg_url(name: str = PG_SCRATCH_DB) -> str:
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def service_env(
    db: str, tmp: Path, extra: dict[str, str], pg_database: str = PG_SCRATCH_DB
) -> dict[str, str]:
    """The service's settings in the benchmark (the caller's own EMRTASKS_* variables are dropped)."""
    return {
        "EMRTASKS_DATABASE_URL": pg_url(pg_database)
        if db == "postgres"
        else f"sqlite+aiosqlite:///{tmp}/bench.db",
        "EMRTASKS_KEY_FILE": str(tmp / "emrtasks.key"),
        "EMRTASKS_BENCH_ROUTES": "true",
        "EMRTASKS_ACCESS_LOG": "false",
        "EMRTASKS_LOG_LEVEL": "WARNING",
        "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
        "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
        # One connection sends thousands of requests a second here: limits far above that keep the
        # limiter's cost in the figures without ever refusing.
        "EMRTASKS_RATE_LIMIT_CLIENT_PER_SECOND": "1000000",
        "EMRTASKS_RATE_LIMIT_CONNECTION_PER_SECOND": "1000000",
        **extra,
    }


def provision_sandbox(cli: Callable[..., dict[str, Any]], name: str) -> dict[str, str]:
    """A client and a sandbox connection (no latency) made with `cli` (the emrtasks command line,
    its JSON answer parsed); the headers that act on the connection."""
    client = cli("clients", "create", "--name", name)
    connection = cli(
        "connections",
        "create",
        "--client-id",
        client["client_id"],
        "--emr",
        "sandbox",
        "--rules",
        "subject_assignee",
        "--config",
        json.dumps({"latency_ms": 0}),
    )
    return {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "access_token": connection["access_token"],
    }


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> int | None:
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


class Stack:
    """The service, its client/connection/webhook, the receiver; phases of load against them.

    A subclass may start other processes than one `serve` (`_start_service`), use a scratch
    PostgreSQL database of its own name (`pg_database`), or pin nothing to a core (`pin`)."""

    pg_database = PG_SCRATCH_DB
    pin = True

    def __init__(self, db: str, extra_env: dict[str, str] | None = None) -> None:
        self.db = db
        self.tmp = Path(tempfile.mkdtemp(prefix=f"emrtasks-bench-{db}-"))
        self.port = free_port()
        self.receiver_port = free_port()
        self.service: subprocess.Popen[bytes] | None = None
        self.receiver: subprocess.Popen[bytes] | None = None
        self.sampler: RssSampler | None = None
        self.accepted_total = 0
        self.warnings: list[str] = []
        self.headers: dict[str, str] = {}
        self.rss_idle_kb = 0
        env = {key: value for key, value in os.environ.items() if not key.startswith("EMRTASKS_")}
        self.env = {**env, **service_env(db, self.tmp, extra_env or {}, self.pg_database)}

    # -- set-up ---------------------------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        try:
            self._start()
        except BaseException:
            self.close(keep_files=True)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(keep_files=kind is not None)

    def cli(self, *args: str) -> dict[str, str]:
        result: dict[str, str] = json.loads(self._emrtasks(*args))
        return result

    def _emrtasks(self, *args: str) -> bytes:
        """What the command printed on stdout; RuntimeError with its stderr if it failed."""
        done = subprocess.run(
            [PYTHON, "-m", "emrtasks", *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"emrtasks {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout

    def _start(self) -> None:
        if self.db == "postgres":
            recreate_pg_database(self.pg_database)
        self._emrtasks("db", "upgrade")  # operator commands never make the database
        self.headers = provision_sandbox(self.cli, "bench")
        self._start_service()
        status, registered = http_json(
            self.port,
            "POST",
            "/v1/webhook",
            {"webhook_url": f"http://127.0.0.1:{self.receiver_port}/hook"},
            headers={key: self.headers[key] for key in ("client_id", "client_secret")},
        )
        if status != 201:
            raise RuntimeError(f"webhook registration failed: {status} {registered}")
        receiver_log = open(self.tmp / "receiver.log", "wb")  # noqa: SIM115
        self.receiver = subprocess.Popen(
            self._pinned(
                [PYTHON, str(BENCH_DIR / "receiver.py"), "--port", str(self.receiver_port)], LOAD_CORE
            ),
            env={**os.environ, "WEBHOOK_SECRET": registered["webhook_secret"]},
            stdout=receiver_log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_up(self.receiver, self.receiver_port, "/_bench/stats", "receiver")
        # One task end to end before any load: it fills the EMR directory cache, the connection pools
        # and the connection to the receiver, as on a service that has been up for a while.
        status, answer = http_json(self.port, "POST", "/v1/tasks", TASK_BODY, headers=self.headers)
        if status != 202:
            raise RuntimeError(f"the warm-up task was refused: {status} {answer}")
        self.accepted_total += 1
        self.quiesce(60)
        time.sleep(0.5)  # let start-up settle before the idle RSS is read
        self.rss_idle_kb = status_kb(self.service.pid, "VmRSS")
        self.sampler = RssSampler(self.service.pid)
        self.sampler.start()

    def _start_service(self) -> None:
        """`serve` on self.port, pinned to the service's core; returns once it answers."""
        self.service = self.launch(["serve", "--port", str(self.port)], "serve")
        self._wait_until_up(self.service, self.port, "/healthz", "serve")

    def launch(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        """`python -m emrtasks <args>` with the service's settings; its output in <tmp>/<name>.log."""
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the child's lifetime)
        return subprocess.Popen(
            self._pinned([PYTHON, "-m", "emrtasks", *args], SERVICE_CORE),
            env=self.env,
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _pinned(self, command: list[str], core: int) -> list[str]:
        return pinned(command, core) if self.pin else command

    def _wait_until_up(self, process: subprocess.Popen[bytes], port: int, path: str, name: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.tmp}")
            try:
                status, _ = http_json(port, "GET", path, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start within 60 s; see {self.tmp}")

    @property
    def pid(self) -> int:
        assert self.service is not None
        return self.service.pid

    # -- load -------------------------------------------------------------------------------------------

    def spec(self, mode: str, path: str = "/v1/tasks", **fields: Any) -> dict[str, Any]:
        return {
            "mode": mode,
            "port": self.port,
            "receiver_port": self.receiver_port,
            "path": path,
            "headers": self.headers,
            "body": json.dumps(TASK_BODY),
            **fields,
        }

    def start_loadgen(self, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._pinned([PYTHON, str(BENCH_DIR / "loadgen.py"), json.dumps(spec)], LOAD_CORE),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def finish_loadgen(self, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
            raise RuntimeError(f"the load generator overran {timeout:.0f} s") from None
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed: {stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(stdout)
        if result.get("path", "/v1/tasks") == "/v1/tasks":  # tasks whose webhooks quiesce() waits for
            self.accepted_total += int(result.get("accepted_total", result.get("accepted", 0)))
        return result

    def phase(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one load generator phase; add the service's and the receiver's CPU use over it."""
        assert self.receiver is not None
        service_cpu, receiver_cpu, started = (
            cpu_seconds(self.pid),
            cpu_seconds(self.receiver.pid),
            time.monotonic(),
        )
        result = self.finish_loadgen(self.start_loadgen(spec), timeout)
        wall = time.monotonic() - started
        result["service_cpu_seconds"] = round(cpu_seconds(self.pid) - service_cpu, 3)
        result["service_cpu_util"] = round(result["service_cpu_seconds"] / wall, 3)
        result["receiver_cpu_util"] = round((cpu_seconds(self.receiver.pid) - receiver_cpu) / wall, 3)
        return result

    def quiesce(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until every task accepted so far has had its webhook verified (the backlog is empty)."""
        started = time.monotonic()
        _status, answer = http_json(
            self.receiver_port,
            "GET",
            f"/_bench/wait-total?n={self.accepted_total}&timeout={timeout}",
            timeout=timeout + 30,
        )
        waited = round(time.monotonic() - started, 3)
        if not answer["complete"]:
            self.warnings.append(
                f"backlog not drained after {timeout:.0f} s: {answer['verified_total']} of "
                f"{self.accepted_total} webhooks verified"
            )
        time.sleep(0.2)
        return {"waited_s": waited, **answer}

    def receiver_stats(self) -> dict[str, Any]:
        _status, answer = http_json(self.receiver_port, "GET", "/_bench/stats")
        result: dict[str, Any] = answer
        return result

    def memory(self) -> dict[str, float]:
        assert self.sampler is not None
        return {
            "rss_idle_mb": round(self.rss_idle_kb / 1024, 1),
            "rss_peak_sampled_mb": round(self.sampler.peak_kb / 1024, 1),
            "vm_hwm_mb": round(status_kb(self.pid, "VmHWM") / 1024, 1),
            "samples": self.sampler.samples,
        }

    # -- tear-down --------------------------------------------------------------------------------------

    def close(self, keep_files: bool = False) -> None:
        """Stop everything; keep the temp dir (logs, database) when the run failed."""
        if self.sampler is not None:
            self.sampler.stop()
        _stop(self.receiver)
        code = _stop(self.service)
        if code not in (None, 0):
            self.warnings.append(f"serve exited with {code}")
        if self.db == "postgres":
            try:
                drop_pg_database(self.pg_database)
            except Exception as exc:  # reported, not fatal: the next run drops it first anyway
                self.warnings.append(f"could not drop {self.pg_database}: {exc}")
        if keep_files:
            print(f"kept {self.tmp} (serve.log, receiver.log) for inspection", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
