"""Chaos run: `serve --no-worker` and two `emrtasks worker` processes on a real database, a webhook
receiver on loopback, sandbox EMRs that are slow, flaky and lose replies; tasks submitted with
Idempotency-Keys (some sent twice), a random worker SIGKILLed every 1 to 2 seconds and restarted,
PostgreSQL restarted once. Then the invariants are checked and printed; any violation fails the run.

    python -m tests.chaos.run --tasks 1000 --db both        (make chaos)
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from emrtasks.storage import db, tables
from tests.e2e.conftest import free_port
from tests.receiver import Receiver

POSTGRES_ADMIN_URL = os.environ.get(
    "EMRTASKS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TERMINAL = {"created", "failed", "unknown"}
KNOBS = {"latency_ms": 20, "transient_failure_rate": 0.15, "unknown_rate": 0.15}


@dataclass
class Report:
    database: str
    submitted: int = 0
    accepted: int = 0
    replays: int = 0
    kills: int = 0
    postgres_restarts: int = 0
    client_retries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    events: int = 0
    deliveries_verified: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    logs: str = ""

    def print(self) -> None:
        print(f"\n== chaos on {self.database}: {'PASS' if not self.violations else 'FAIL'} ==")
        rows = {
            "tasks submitted / accepted": f"{self.submitted} / {self.accepted}",
            "Idempotency-Key replays checked": self.replays,
            "client retries after errors": self.client_retries,
            "workers SIGKILLed": self.kills,
            "PostgreSQL restarts": self.postgres_restarts,
            "task outcomes": dict(self.statuses),
            "events / verified at the receiver": f"{self.events} / {self.deliveries_verified}",
            "seconds": round(self.seconds, 1),
        }
        for name, value in rows.items():
            print(f"  {name:34} {value}")
        for violation in self.violations[:20]:
            print(f"  VIOLATION: {violation}")
        if self.logs:
            print("  errors logged by the processes:\n" + self.logs)


class Processes:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.starts = 0

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = open(self.log_dir / f"{args[0]}-{self.starts}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "emrtasks.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def cli(self, *args: str) -> dict[str, str]:
        return json.loads(self._emrtasks(*args))

    def upgrade(self) -> None:
        """Make the database: operator commands never do."""
        self._emrtasks("db", "upgrade")

    def _emrtasks(self, *args: str) -> bytes:
        done = subprocess.run(
            [sys.executable, "-m", "emrtasks.cli", *args],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode())
        return done.stdout

    def start(self, workers: int) -> None:
        self.serve = self._spawn("serve", "--no-worker", "--port", str(self.port))
        self.workers = [self._spawn("worker") for _ in range(workers)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("serve did not start")

    def kill_random_worker(self) -> None:
        index = random.randrange(len(self.workers))
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(timeout=10)
        self.workers[index] = self._spawn("worker")

    def stop(self) -> None:
        for process in [*self.workers, self.serve]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.serve]:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def restart_postgres() -> bool:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return False
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0


async def submit(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], report: Report, twice: bool
) -> dict[str, Any] | None:
    """POST with an Idempotency-Key, retrying errors with the same key; optionally send it again."""
    key = str(uuid.uuid4())
    first = await _post_until_answered(http, headers | {"Idempotency-Key": key}, body, report)
    if first is None or not twice:
        return first
    again = await _post_until_answered(http, headers | {"Idempotency-Key": key}, body, report)
    report.replays += 1
    if again is None or (again["task_id"], again["job_id"]) != (first["task_id"], first["job_id"]):
        report.violations.append(f"replay of key {key} answered {again} instead of {first}")
    return first


async def _post_until_answered(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], report: Report
) -> dict[str, Any] | None:
    for attempt in range(150):
        try:
            answer = await http.post("/v1/tasks", json=body, headers=headers)
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code == 202:
            return dict(answer.json())
        if answer is not None and answer.status_code not in (409, 503):
            report.violations.append(f"POST /v1/tasks answered {answer.status_code}: {answer.text[:200]}")
            return None
        report.client_retries += attempt == 0
        await asyncio.sleep(0.5)
    return None


async def run_once(database: str, tasks: int, seed: int, *, restart: bool = True) -> Report:
    random.seed(seed)
    report = Report(database)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="emrtasks-chaos-") as tmp:
        url = await _database(database, Path(tmp))
        env = _environment(url, Path(tmp))
        procs = Processes(env, Path(tmp))
        try:
            with Receiver() as receiver:
                await _run(procs, receiver, restart and database == "postgres", tasks, report)
                await _check(url, receiver, report)
            if report.violations:
                report.logs = _tracebacks(Path(tmp))
        finally:
            procs.stop()
            if database == "postgres":
                await _drop(url)
    report.seconds = time.monotonic() - started
    return report


async def _run(procs: Processes, receiver: Receiver, restart_db: bool, count: int, report: Report) -> None:
    procs.upgrade()
    client = procs.cli("clients", "create", "--name", "chaos")
    tokens = [
        procs.cli("connections", "create", "--client-id", client["client_id"], "--config", json.dumps(KNOBS))[
            "access_token"
        ]
        for _ in range(3)
    ]
    procs.start(workers=2)
    base = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    async with httpx.AsyncClient(base_url=procs.url, timeout=30) as http:
        hook = await http.post("/v1/webhook", json={"webhook_url": receiver.url}, headers=base)
        receiver.secrets.append(hook.json()["webhook_secret"])
        stop = threading.Event()
        chaos = threading.Thread(target=_chaos, args=(procs, restart_db, stop, report), daemon=True)
        chaos.start()
        accepted = await _submit_all(http, base, tokens, count, report)
        await asyncio.sleep(3)  # a few more kills while the backlog drains
        stop.set()
        chaos.join()
        report.accepted = len(accepted)
        await _wait_terminal(http, accepted, report)
        await _wait_delivered(http, base, receiver, report)


async def _submit_all(
    http: httpx.AsyncClient, base: dict[str, str], tokens: list[str], count: int, report: Report
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[dict[str, str], dict[str, Any]] | None:
        headers = base | {"access_token": tokens[i % len(tokens)]}
        mrn = "MRN-0000" if i % 10 == 0 else f"MRN-{1001 + i % 20}"
        body = {
            "subject": f"chaos {i}",
            "description": "chaos",
            "assignee_user_id": "usr_1001",
            "patient_mrn": mrn,
        }
        async with gate:
            answer = await submit(http, headers, body, report, twice=i % 5 == 0)
        return (headers, answer) if answer else None

    report.submitted = count
    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [r for r in results if r is not None]


def _chaos(procs: Processes, restart_db: bool, stop: threading.Event, report: Report) -> None:
    restarted = not restart_db
    while not stop.wait(random.uniform(1.0, 2.0)):
        procs.kill_random_worker()
        report.kills += 1
        if not restarted and report.kills >= 2:
            restarted = True
            report.postgres_restarts += int(restart_postgres())


async def _wait_terminal(
    http: httpx.AsyncClient, accepted: list[tuple[dict[str, str], dict[str, Any]]], report: Report
) -> None:
    pending = {a["task_id"]: h for h, a in accepted}
    deadline = time.monotonic() + 180
    while pending and time.monotonic() < deadline:
        for task_id, headers in list(pending.items()):
            answer = await http.get(f"/v1/tasks/{task_id}", headers=headers)
            if answer.status_code == 200 and answer.json()["task"]["status"] in TERMINAL:
                report.statuses[answer.json()["task"]["status"]] += 1
                pending.pop(task_id)
        await asyncio.sleep(0.5)
    for task_id in pending:
        report.violations.append(f"{task_id} never reached a terminal state")


async def _wait_delivered(
    http: httpx.AsyncClient, base: dict[str, str], receiver: Receiver, report: Report
) -> None:
    deadline = time.monotonic() + 120
    event_ids: set[str] = set()
    while time.monotonic() < deadline:
        event_ids = await _all_event_ids(http, base)
        verified = {d.headers["webhook-id"] for d in receiver.verified()}
        if event_ids <= verified:
            break
        await asyncio.sleep(1)
    verified = {d.headers["webhook-id"] for d in receiver.verified()}
    report.events = len(event_ids)
    report.deliveries_verified = len(event_ids & verified)
    for missing in sorted(event_ids - verified)[:20]:
        report.violations.append(f"event {missing} was never delivered and verified")


async def _all_event_ids(http: httpx.AsyncClient, base: dict[str, str]) -> set[str]:
    found: set[str] = set()
    page = 1
    while True:
        answer = await http.get("/v1/webhook-events", params={"page": page, "page_size": 100}, headers=base)
        body = answer.json()
        found.update(e["id"] for e in body["webhook_events"])
        if page >= body["pagination"]["total_pages"]:
            return found
        page += 1


async def _check(url: str, receiver: Receiver, report: Report) -> None:
    engine = db.create_engine(url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(tables.tasks.c.id, tables.tasks.c.status, tables.tasks.c.emr_task_id))
        ).all()
        held = (
            await conn.execute(select(tables.sandbox_emr_tasks.c.marker, tables.sandbox_emr_tasks.c.id))
        ).all()
    await engine.dispose()
    per_marker: dict[str, list[str]] = {}
    for marker, emr_id in held:
        per_marker.setdefault(marker, []).append(emr_id)
    for task_id, status, emr_task_id in rows:
        written = per_marker.get(task_id, [])
        if status == "created" and written != [emr_task_id]:
            report.violations.append(f"{task_id} is created but the EMR holds {written}")
        if status != "created" and written:
            report.violations.append(f"{task_id} is {status} but the EMR holds {written}")
    if len(rows) != report.accepted:
        report.violations.append(f"{len(rows)} tasks stored for {report.accepted} accepted")


def _tracebacks(folder: Path) -> str:
    """The first tracebacks the processes logged, to explain a violation."""
    found = []
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace")
        start = text.find("Traceback")
        if start >= 0:
            found.append(f"--- {log.name}\n{text[max(0, start - 300) : start + 3000]}")
    return "\n".join(found[:3])


def _environment(url: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EMRTASKS_DATABASE_URL": url,
        "EMRTASKS_KEY_FILE": str(tmp / "emrtasks.key"),
        "EMRTASKS_JOB_LEASE_SECONDS": "3",
        "EMRTASKS_REAPER_INTERVAL_SECONDS": "0.5",
        "EMRTASKS_WORKER_POLL_SECONDS": "0.3",
        "EMRTASKS_WORKER_GRACE_SECONDS": "2",
        "EMRTASKS_RETRY_BASE_SECONDS": "0.05",
        "EMRTASKS_RETRY_MAX_SECONDS": "1",
        "EMRTASKS_TASK_MAX_ATTEMPTS": "40",
        "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
        "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
        "EMRTASKS_WEBHOOK_RETRY_SCHEDULE": ",".join(["0", "0.2", "0.5"] + ["1"] * 60),
        "EMRTASKS_ACCESS_LOG": "false",
        "EMRTASKS_LOG_LEVEL": "WARNING",
    }


async def _database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'chaos.db'}"
    name = f"emrtasks_chaos_{os.getpid()}"
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(f'CREATE DATABASE "{name}"')
    from sqlalchemy import make_url

    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def _drop(url: str) -> None:
    from sqlalchemy import make_url

    await _admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def _admin(statement: str) -> None:
    for _ in range(30):  # PostgreSQL may still be coming back from its restart
        try:
            engine = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.execute(text(statement))
            await engine.dispose()
            return
        except OSError:
            await asyncio.sleep(1)
        except Exception as exc:  # CannotConnectNow while starting up
            if "starting up" not in str(exc) and "shutting down" not in str(exc):
                raise
            await asyncio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--no-postgres-restart", action="store_true", help="leave the server running")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"chaos: {args.tasks} tasks per database, seed {args.seed}")
    reports = [
        asyncio.run(run_once(kind, args.tasks, args.seed, restart=not args.no_postgres_restart))
        for kind in kinds
    ]
    for report in reports:
        report.print()
    return 1 if any(r.violations for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
