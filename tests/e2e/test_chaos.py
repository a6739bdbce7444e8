"""The chaos run at a reduced size (200 tasks): real processes, SIGKILLed workers, and on PostgreSQL
a server restart when allowed (CI=true, or EMRTASKS_CHAOS_RESTART_POSTGRES=1: it restarts the
machine's cluster). `make chaos` runs the full size."""

import asyncio
import os

import pytest

from tests.chaos import run

pytestmark = pytest.mark.e2e


def _may_restart_postgres() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("EMRTASKS_CHAOS_RESTART_POSTGRES") == "1"


def test_chaos_on_sqlite_loses_nothing_and_writes_nothing_twice():
    report = asyncio.run(run.run_once("sqlite", 200, seed=7))
    report.print()
    assert report.violations == []
    assert report.accepted == 200
    assert report.kills >= 2


@pytest.mark.postgres
def test_chaos_on_postgres_loses_nothing_and_writes_nothing_twice():
    if not os.environ.get("EMRTASKS_TEST_DATABASE_URL"):
        pytest.skip("EMRTASKS_TEST_DATABASE_URL is not set")
    report = asyncio.run(run.run_once("postgres", 200, seed=7, restart=_may_restart_postgres()))
    report.print()
    assert report.violations == []
    assert report.accepted == 200
    assert report.postgres_restarts == int(_may_restart_postgres())
