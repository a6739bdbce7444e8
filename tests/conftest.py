"""Shared fixtures: a real database (SQLite always, PostgreSQL when EMRTASKS_TEST_DATABASE_URL is set),
a migrated runtime without a background worker, an in-process HTTP client, a client with two sandbox
connections, a controllable clock, and `drain` to run due jobs to completion."""

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.queue import jobs
from emrtasks.service import admin, create_task, tasks
from emrtasks.storage import db, tables

POSTGRES_URL = os.environ.get("EMRTASKS_TEST_DATABASE_URL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()) and "[postgres]" in item.nodeid:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str]:
    """A database of this test session's own on the server, so parallel runs do not collide."""
    assert POSTGRES_URL
    base = make_url(POSTGRES_URL)
    name = f"emrtasks_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: URL, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'emrtasks.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("EMRTASKS_TEST_DATABASE_URL is not set")
    url = request.getfixturevalue("_postgres_url")
    yield url
    asyncio.run(_truncate(url))


async def _truncate(url: str) -> None:
    engine = db.create_engine(url)
    names = ", ".join(t.name for t in tables.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    await engine.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        key_file=str(tmp_path / "emrtasks.key"),
        sqlite_synchronous="NORMAL",
        worker_poll_seconds=0.2,
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        job_lease_seconds=30,
        auth_cache_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
    )


class FakeClock:
    """A clock the test moves by hand; starts at the real time so leases compare sensibly."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[bootstrap.Runtime]:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        rt.ctx.clock = clock
        yield rt


@pytest.fixture
async def api(runtime: bootstrap.Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.ctx, max_body_bytes=runtime.settings.max_body_bytes)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@dataclass
class Tenant:
    client_id: str
    client_secret: str
    token_a: str  # sandbox, subject_assignee rules, reference "ref-a"
    token_b: str  # sandbox, phone_call rules, reference "ref-b"
    connection_a: str
    connection_b: str

    def headers(self, token: str | None = None) -> dict[str, str]:
        found = {"client_id": self.client_id, "client_secret": self.client_secret}
        if token is not None:
            found["access_token"] = token
        return found

    @property
    def a(self) -> dict[str, str]:
        return self.headers(self.token_a)

    @property
    def b(self) -> dict[str, str]:
        return self.headers(self.token_b)


async def make_tenant(rt: bootstrap.Runtime, name: str = "tests", **sandbox: float) -> Tenant:
    client = await admin.create_client(rt.ctx, name)
    connections = []
    for rules, reference in (("subject_assignee", "ref-a"), ("phone_call", "ref-b")):
        connections.append(
            await admin.create_connection(
                rt.ctx,
                client_id=client.client_id,
                emr="sandbox",
                rules=rules,
                reference_id=reference,
                settings=dict(sandbox),
            )
        )
    return Tenant(
        client.client_id,
        client.client_secret,
        connections[0].access_token,
        connections[1].access_token,
        connections[0].connection_id,
        connections[1].connection_id,
    )


@pytest.fixture
async def tenant(runtime: bootstrap.Runtime) -> Tenant:
    return await make_tenant(runtime)


async def drain(rt: bootstrap.Runtime, rounds: int = 100) -> int:
    """Run every due job, as a worker would, until none is due; returns how many attempts ran."""
    handlers = {tasks.CREATE_TASK: functools.partial(create_task.run_create_task, rt.ctx)}
    ran = 0
    for _ in range(rounds):
        claimed = await jobs.claim(
            rt.engine, worker_id="tests", limit=50, lease_seconds=30, now=rt.ctx.clock()
        )
        if not claimed:
            return ran
        for job in claimed:
            await handlers[job.kind](job)
            ran += 1
    raise AssertionError("jobs kept coming back")


SUBJECT_TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}
PHONE_TASK = {
    "description": "Refill request for lisinopril.",
    "patient_mrn": "MRN-1002",
    "phone_call_type_id": "pct_01",
    "notify_list": ["usr_1003"],
}


@pytest.fixture(scope="session")
def gnuhealth_server() -> "Iterator[object]":
    """A real GNU Health (tests/gnuhealth/setup.py): its template restored once per test session and
    served by `trytond` on loopback. Skips, naming what is missing, where it cannot run."""
    from tests.gnuhealth import setup

    setup.skip_or_fail()
    with setup.serve() as server:
        yield server
