"""Where a task's CPU goes, function by function: the whole pipeline in one process under cProfile.

    python bench/inprocess.py                       # SQLite in a temp dir, 600 tasks
    python bench/inprocess.py --db postgres --tasks 1000 --top 40   # a scratch database, as make bench
    python bench/inprocess.py --no-profile          # CPU per task without the profiler's overhead
    python bench/inprocess.py --db postgres --no-profile --round-trips   # and PostgreSQL's round trips

`make bench` measures the real `serve` from outside; this is its magnifying glass. It runs the
service's runtime (engine, worker, sandbox EMR at 0 ms) in this process, posts tasks through the ASGI
app (httpx's ASGI transport, so the client's cost is in the profile too: it shows as httpx), lets the
worker create them and deliver their webhooks over real HTTP to a minimal keep-alive receiver in a
child process on loopback, and stops when every delivery has succeeded. It prints the process CPU per
task and cProfile's functions by own time and by cumulative time, our code and the layers under it.
cProfile slows Python code about twofold and not C code, so read shares, not absolute times.
`--round-trips` (PostgreSQL) counts the round trips to the server per task, statement by statement:
each BEGIN, COMMIT, statement and pool reset, and each statement prepared (a Parse the cache missed).
"""

import argparse
import asyncio
import collections
import cProfile
import pstats
import tempfile
import time
from typing import Any

import harness  # bench/harness.py: the scratch PostgreSQL database, free ports, the task body
import httpx
from sqlalchemy import text

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.service import admin
from emrtasks.storage import db


async def run(args: argparse.Namespace, workdir: str, port: int) -> None:
    url = harness.PG_URL if args.db == "postgres" else f"sqlite+aiosqlite:///{workdir}/emrtasks.db"
    settings = Settings(
        database_url=url,
        key_file=f"{workdir}/emrtasks.key",
        webhook_allow_insecure=True,
        webhook_allow_private=True,
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )
    async with bootstrap.runtime(settings) as rt:
        client = await admin.create_client(rt.ctx, "inprocess")
        connection = await admin.create_connection(
            rt.ctx,
            client_id=client.client_id,
            emr="sandbox",
            rules="subject_assignee",
            reference_id="inprocess",
            settings={"latency_ms": 0},
        )
        headers = {"client_id": client.client_id, "client_secret": client.client_secret}
        transport = httpx.ASGITransport(app=create_app(rt.ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://inprocess") as http:
            hook = {"webhook_url": f"http://127.0.0.1:{port}/hook"}
            assert (await http.post("/v1/webhook", json=hook, headers=headers)).status_code == 201
            headers["access_token"] = connection.access_token
            await _tasks(http, headers, rt, 1)  # warm-up: caches, pools, the receiver connection

            profile = cProfile.Profile()
            trips = _RoundTrips() if args.round_trips else None
            cpu, wall = time.process_time(), time.perf_counter()
            if args.profile:
                profile.enable()
            await _tasks(http, headers, rt, args.tasks + 1)
            profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if trips is not None:
                trips.stop()
    print(
        f"{args.tasks} tasks, accept to delivered webhook, in {wall:.2f} s ({args.tasks / wall:.0f}/s); "
        f"process CPU {cpu * 1000 / args.tasks:.2f} ms per task"
        + (" (under cProfile)" if args.profile else "")
    )
    if trips is not None:
        trips.report(args.tasks)
    if args.profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(r"emrtasks/", args.top)


async def _tasks(http: httpx.AsyncClient, headers: dict[str, str], rt: bootstrap.Runtime, total: int) -> None:
    """Post tasks (32 at a time) until `total` have been delivered since the start."""
    sent = await _delivered(rt)
    gate = asyncio.Semaphore(32)

    async def one() -> None:
        async with gate:
            answer = await http.post("/v1/tasks", json=harness.TASK_BODY, headers=headers)
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(one() for _ in range(total - sent)))
    while await _delivered(rt) < total:  # noqa: ASYNC110 (the database is what says it is done)
        await asyncio.sleep(0.005)


async def _delivered(rt: bootstrap.Runtime) -> int:
    async with db.read(rt.engine) as conn:
        found = await conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'success'"))
        return int(found.scalar() or 0)


class _RoundTrips:
    """Counts asyncpg's round trips by statement, while counting: simple queries (BEGIN, COMMIT, a
    pool's reset), executions of prepared statements (one Bind/Execute each, in one exchange),
    many-row executions, and each Parse the statement cache missed (one round trip more)."""

    def __init__(self) -> None:
        import asyncpg.connection

        self.counts: collections.Counter[str] = collections.Counter()
        self._cls = asyncpg.connection.Connection
        names = ("execute", "_execute", "_executemany", "_get_statement")
        self._saved = {name: getattr(self._cls, name) for name in names}
        counts, saved = self.counts, self._saved

        async def execute(con: Any, query: str, *args: Any, **kw: Any) -> Any:
            if not args:
                counts[_label(query)] += 1
            return await saved["execute"](con, query, *args, **kw)

        async def execute_(con: Any, query: str, *args: Any, **kw: Any) -> Any:
            counts[_label(query)] += 1
            return await saved["_execute"](con, query, *args, **kw)

        async def executemany(con: Any, query: str, *args: Any, **kw: Any) -> Any:
            counts["many: " + _label(query)] += 1
            return await saved["_executemany"](con, query, *args, **kw)

        async def get_statement(con: Any, query: str, *args: Any, **kw: Any) -> Any:
            if con._stmt_cache.get((query, con._protocol.get_record_class(), False)) is None:
                counts["parse: " + _label(query)] += 1
            return await saved["_get_statement"](con, query, *args, **kw)

        for name, patched in (
            ("execute", execute),
            ("_execute", execute_),
            ("_executemany", executemany),
            ("_get_statement", get_statement),
        ):
            setattr(self._cls, name, patched)

    def stop(self) -> None:
        for name, original in self._saved.items():
            setattr(self._cls, name, original)

    def report(self, tasks: int) -> None:
        total = sum(n for label, n in self.counts.items())
        print(f"round trips to PostgreSQL: {total / tasks:.2f} per task")
        for label, n in self.counts.most_common():
            print(f"  {n / tasks:6.2f}  {label}")


def _label(sql: str) -> str:
    """A statement's first words, enough to tell the steps apart."""
    return " ".join(sql.split())[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--round-trips", action="store_true", help="count PostgreSQL's round trips per task")
    args = parser.parse_args()
    if args.db == "postgres":
        harness.recreate_pg_database()
    try:
        with harness.answering_receiver() as port:
            asyncio.run(run(args, tempfile.mkdtemp(prefix="emrtasks-inprocess-"), port))
    finally:
        if args.db == "postgres":
            harness.drop_pg_database()


if __name__ == "__main__":
    main()
