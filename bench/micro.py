"""The microbenchmarks behind the storage and webhook designs (docs/performance.md): CPU per operation.

    python bench/micro.py             # SQLite statement paths, webhook POST clients
    python bench/micro.py --postgres  # also SQLAlchemy's asyncpg layer against asyncpg itself
    python bench/micro.py --webhooks  # only the webhook POST clients

Each line is the process CPU per operation (µs), the median of 5 rounds, on one core:

- one indexed SELECT on a SQLite file: SQLAlchemy's async engine on aiosqlite, SQLAlchemy's sync
  engine with the statement built each time and built once, the driver's SQL, and sqlite3 alone;
- one INSERT and one UPDATE of a job row: the statement built with its values each time, against
  built once with the values bound at execution;
- one webhook-sized POST to a keep-alive receiver on loopback: httpx, httpcore, and our
  `webhooks.http1.Client`;
- with `--postgres` (127.0.0.1:5432, database `test`): one SELECT through SQLAlchemy's async engine
  on asyncpg, against asyncpg alone.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import harness
import httpcore
import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from emrtasks.storage.tables import jobs, metadata
from emrtasks.webhooks import http1

ROUNDS = 5


def _per_op(run: Callable[[int], None], n: int) -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.process_time()
        run(n)
        samples.append((time.process_time() - started) / n * 1e6)
    return statistics.median(samples)


async def _per_op_async(run: Callable[[int], Awaitable[None]], n: int) -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.process_time()
        await run(n)
        samples.append((time.process_time() - started) / n * 1e6)
    return statistics.median(samples)


def _repeat(operation: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            operation()

    return run


def _show(label: str, micros: float) -> None:
    print(f"  {label:<62} {micros:8.1f} µs")


def sqlite_paths(path: Path) -> None:
    print("one indexed SELECT on a SQLite file (WAL)")
    sync = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(sync)

    def built() -> sa.Select[tuple[str, str]]:
        return sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id == "job_x", jobs.c.state == "queued")

    prebuilt = built()
    with sync.connect() as conn:
        _show(
            "SQLAlchemy sync, statement built each time",
            _per_op(_repeat(lambda: conn.execute(built()).first()), 2000),
        )
        _show(
            "SQLAlchemy sync, statement built once",
            _per_op(_repeat(lambda: conn.execute(prebuilt).first()), 2000),
        )
        sql = "SELECT id, state FROM jobs WHERE id = ? AND state = ?"
        _show(
            "SQLAlchemy exec_driver_sql",
            _per_op(
                _repeat(lambda: conn.exec_driver_sql(sql, ("job_x", "queued")).first()),
                2000,
            ),
        )
        raw = conn.connection.dbapi_connection
        assert raw is not None
        _show(
            "sqlite3 alone",
            _per_op(_repeat(lambda: raw.execute(sql, ("job_x", "queued")).fetchone()), 2000),
        )

    async def through_aiosqlite() -> float:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        async with engine.connect() as conn:

            async def run(n: int) -> None:
                for _ in range(n):
                    (await conn.execute(prebuilt)).first()

            result = await _per_op_async(run, 500)
        await engine.dispose()
        return result

    _show("SQLAlchemy async on aiosqlite (a thread hand-off each)", asyncio.run(through_aiosqlite()))

    print("one INSERT and one UPDATE of a job row (SQLAlchemy sync)")
    now = datetime.now(UTC)
    counter = iter(range(10**9))

    def row() -> dict[str, object]:
        return {
            "id": f"job_{next(counter)}",
            "kind": "create_task",
            "state": "queued",
            "connection_id": None,
            "task_id": None,
            "payload": {"a": 1},
            "attempts": 0,
            "max_attempts": 5,
            "run_at": now,
            "reconcile": False,
            "group_key": "g",
            "group_limit": 2,
            "created_at": now,
            "updated_at": now,
        }

    insert_once = sa.insert(jobs)
    update_once = sa.update(jobs).where(jobs.c.id == sa.bindparam("b_id"), jobs.c.state == "running")
    changes = {"state": "succeeded", "finished_at": now, "updated_at": now}
    with sync.begin() as conn:
        _show(
            "INSERT built with its values each time",
            _per_op(_repeat(lambda: conn.execute(sa.insert(jobs).values(**row()))), 1000),
        )
        _show(
            "INSERT built once, values bound at execution",
            _per_op(_repeat(lambda: conn.execute(insert_once, row())), 1000),
        )
        _show(
            "UPDATE built with its values each time",
            _per_op(
                lambda n: (
                    [
                        conn.execute(
                            sa.update(jobs)
                            .where(jobs.c.id == "job_1", jobs.c.state == "running")
                            .values(**changes)
                        )
                        for _ in range(n)
                    ]
                    and None
                ),
                1000,
            ),
        )
        _show(
            "UPDATE built once, values bound at execution",
            _per_op(
                lambda n: (
                    [conn.execute(update_once, {"b_id": "job_1", **changes}) for _ in range(n)] and None
                ),
                1000,
            ),
        )
    sync.dispose()


def webhook_clients() -> None:
    print("one webhook-sized POST to a keep-alive receiver on loopback")
    body = b'{"id":"evt_1","type":"task.created","data":{"task_id":"task_1"}}' * 8
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1796000000",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
        "webhook-attempt": "1",
        "content-type": "application/json",
        "user-agent": "emrtasks/bench",
    }

    async def measure(port: int, url: str) -> None:
        async with httpx.AsyncClient() as client:

            async def with_httpx(n: int) -> None:
                for _ in range(n):
                    request = client.build_request("POST", url, content=body, headers=headers)
                    response = await client.send(request, stream=True)
                    async for _chunk in response.aiter_raw():
                        pass
                    await response.aclose()

            await with_httpx(50)
            _show("httpx (as the service sent webhooks before)", await _per_op_async(with_httpx, 1000))
        async with httpcore.AsyncConnectionPool() as pool:

            async def with_httpcore(n: int) -> None:
                for _ in range(n):
                    async with pool.stream(
                        "POST", url, content=body, headers=list(headers.items())
                    ) as response:
                        async for _chunk in response.aiter_stream():
                            pass

            _show("httpcore alone", await _per_op_async(with_httpcore, 1000))
        client1 = http1.Client()
        target = http1.Target("http", "127.0.0.1", port, "/hook", f"127.0.0.1:{port}")

        async def with_http1(n: int) -> None:
            for _ in range(n):
                await client1.post(target, headers, body)

        _show("webhooks.http1.Client (the service's)", await _per_op_async(with_http1, 1000))
        await client1.aclose()

    with harness.answering_receiver() as port:
        url = f"http://127.0.0.1:{port}/hook"
        asyncio.run(measure(port, url))


def postgres_paths() -> None:
    print("one SELECT on PostgreSQL (127.0.0.1, CPU of this process only)")

    async def measure(port: int, url: str) -> None:
        engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        statement = sa.select(sa.literal_column("1")).where(sa.bindparam("x") == 1)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")

            async def through_sqlalchemy(n: int) -> None:
                for _ in range(n):
                    (await conn.execute(statement, {"x": 1})).first()

            await through_sqlalchemy(100)
            _show("SQLAlchemy async on asyncpg", await _per_op_async(through_sqlalchemy, 1000))
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            async def through_asyncpg(n: int) -> None:
                for _ in range(n):
                    await raw.fetchrow("SELECT 1 WHERE $1::int = 1", 1)

            _show("asyncpg alone", await _per_op_async(through_asyncpg, 1000))
        await engine.dispose()

    asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--webhooks", action="store_true", help="only the webhook POST clients")
    args = parser.parse_args()
    if not args.webhooks:
        with tempfile.TemporaryDirectory(prefix="emrtasks-micro-") as workdir:
            sqlite_paths(Path(workdir) / "micro.db")
    webhook_clients()
    if args.postgres:
        postgres_paths()


if __name__ == "__main__":
    main()
