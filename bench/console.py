"""What the operator console costs: an Argon2id sign-in, and its pages over a day of many tasks.

    python bench/console.py                      # SQLite in a temp dir, 50,000 tasks in the last 24 h
    python bench/console.py --db postgres --tasks 200000   # a scratch database on the local PostgreSQL

It fills the tables directly (tasks spread over the last 24 hours, a quarter failed or unknown, one
job each), then times each page through the ASGI app in this process (httpx's ASGI transport):
median and worst of `--rounds` requests. Printed figures only; nothing is asserted.
"""

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import harness  # bench/harness.py: PostgreSQL's admin connection
import httpx
from sqlalchemy import insert

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.domain import ids
from emrtasks.service import admin, operators
from emrtasks.storage import db, tables
from emrtasks.web import console as web_console

PASSWORD = "benchmark password"
PG_DB = "emrtasks_bench_console"  # its own, so it never drops the database another benchmark uses
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"
STATUSES = ["created"] * 6 + ["failed", "unknown"]


async def fill(rt: bootstrap.Runtime, count: int) -> tuple[str, str]:
    client = await admin.create_client(rt.ctx, "bench")
    made = await admin.create_connection(
        rt.ctx, client_id=client.client_id, emr="sandbox", rules=None, reference_id=None, settings={}
    )
    now, rng = rt.ctx.clock(), random.Random(7)
    for start in range(0, count, 5000):
        tasks, jobs = [], []
        for _ in range(min(5000, count - start)):
            at = now - timedelta(seconds=rng.uniform(0, 24 * 3600))
            task_id, job_id, status = ids.new_id("task"), ids.new_id("job"), rng.choice(STATUSES)
            tasks.append(_task(task_id, job_id, client.client_id, made.connection_id, status, at))
            jobs.append(_job(job_id, task_id, made.connection_id, at))
        async with db.write(rt.engine) as conn:
            await conn.execute(insert(tables.tasks), tasks)
            await conn.execute(insert(tables.jobs), jobs)
    return client.client_id, made.connection_id


def _task(task_id: str, job_id: str, client_id: str, connection_id: str, status: str, at: object) -> dict:
    return {
        "id": task_id,
        "client_id": client_id,
        "connection_id": connection_id,
        "job_id": job_id,
        "status": status,
        "description": "Benchmark task",
        "patient_mrn": "MRN-1001",
        "notify_list": [],
        "reasons": [],
        "created_at": at,
        "updated_at": at,
    }


def _job(job_id: str, task_id: str, connection_id: str, at: object) -> dict:
    return {
        "id": job_id,
        "kind": "create_task",
        "state": "succeeded",
        "connection_id": connection_id,
        "task_id": task_id,
        "payload": {},
        "attempts": 1,
        "max_attempts": 8,
        "run_at": at,
        "reconcile": False,
        "created_at": at,
        "updated_at": at,
        "finished_at": at,
    }


async def timed(client: httpx.AsyncClient, path: str, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times), max(times)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}" if args.db == "sqlite" else PG_URL
        if args.db == "postgres":
            await harness._pg_admin(
                f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)", f"CREATE DATABASE {PG_DB}"
            )
        settings = Settings(database_url=url, key_file=str(Path(tmp) / "key"), _env_file=None)  # type: ignore[call-arg]
        async with bootstrap.runtime(settings, run_worker=False) as rt:
            started = time.perf_counter()
            client_id, connection_id = await fill(rt, args.tasks)
            print(f"filled {args.tasks} tasks in {time.perf_counter() - started:.1f} s ({args.db})")
            await operators.create_operator(rt.ctx, "bench@example.com", PASSWORD, operators.ADMIN)
            app = create_app(rt.ctx)
            web_console.install(app, b"k" * 32, operators.SessionPolicy(attempts_per_email=10_000))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await _sign_in_times(client, args.rounds)
                for path in (
                    "/console",
                    "/console/tasks",
                    "/console/tasks?status=unknown",
                    f"/console/tasks?connection_id={connection_id}&status=failed",
                    f"/console/tasks?client_id={client_id}&since=2000-01-01T00:00",
                    "/console/connections",
                ):
                    median, worst = await timed(client, path, args.rounds)
                    print(f"GET {path}: median {median:.1f} ms, worst {worst:.1f} ms")
        if args.db == "postgres":
            await harness._pg_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


async def _sign_in_times(client: httpx.AsyncClient, rounds: int) -> None:
    times = []
    for _ in range(rounds):
        page = await client.get("/console/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        started = time.perf_counter()
        answer = await client.post(
            "/console/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf": csrf}
        )
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 303
        client.cookies.clear()
    print(f"POST /console/login (Argon2id verify, session insert): median {statistics.median(times):.1f} ms")
    await client.get("/console/login")
    page = await client.get("/console/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    await client.post(
        "/console/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf": csrf}
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
