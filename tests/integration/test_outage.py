"""PostgreSQL closing the service's pooled connections (a restart, a failover, an administrator's
pg_terminate_backend): requests answer 503, never 500, and the service recovers without a restart,
with every acknowledged task stored. (The chaos run restarts the server itself: `make chaos`.)"""

import dataclasses
import socket

import asyncpg
import httpx
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from emrtasks.api.app import create_app
from emrtasks.domain import errors
from emrtasks.storage import db
from tests.conftest import SUBJECT_TASK


async def _terminate(db_url: str, which: str) -> int:
    url = make_url(db_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {which}"
            )
        )
    finally:
        await admin.close()


async def _terminate_the_service_connections(db_url: str) -> int:
    return await _terminate(db_url, "true")


async def test_connections_killed_by_postgres_answer_503_then_the_service_recovers(
    db_url, runtime, api, tenant
):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL closes connections; a SQLite file has none to close")
    for _ in range(3):
        assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
    assert await _terminate_the_service_connections(db_url) >= 1

    answers = [await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a) for _ in range(6)]
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[-3:] == [202, 202, 202], statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["success"] is False
            assert answer.headers["retry-after"]
    for answer in answers:
        if answer.status_code == 202:
            found = await api.get(f"/v1/tasks/{answer.json()['task_id']}", headers=tenant.a)
            assert found.status_code == 200


async def test_a_postgresql_server_that_refuses_connections_answers_503(runtime, tenant):
    """The direct path's own pool (storage/pg.py) connects lazily; a refused connection is an outage."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = db.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere")
    app = create_app(dataclasses.replace(runtime.ctx, engine=engine))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ready = await client.get("/readyz")
        listed = await client.get("/v1/webhook", headers=tenant.headers())
    await db.dispose(engine)
    assert ready.status_code == 503
    assert listed.status_code == 503, listed.text
    assert listed.json()["success"] is False


async def test_a_connection_killed_inside_a_transaction_is_an_outage_not_a_driver_error(db_url, runtime):
    """The statement fails as an outage (503), and so does nothing else: returning the dead
    connection to the pool must not replace that error with the driver's own."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL closes connections; a SQLite file has none to close")
    with pytest.raises(errors.Outage) as caught:
        async with db.write(runtime.engine) as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            await _terminate(db_url, f"pid = {int(pid)}")
            await conn.execute(text("SELECT 1"))
    assert isinstance(caught.value.__cause__, sa_exc.DBAPIError)
    assert db.is_outage(caught.value.__cause__)
    async with db.read(runtime.engine) as conn:  # and the pool recovers
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
