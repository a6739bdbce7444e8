"""Metrics in one process: GET /metrics on its own address (never the API's), requests by route
template, EMR calls and webhook attempts counted, and the database's figures read at each scrape."""

import functools
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.observability import metrics
from emrtasks.queue import jobs
from emrtasks.service import create_task, tasks, webhook_delivery, webhooks
from emrtasks.storage import connections, db, tables
from tests.conftest import PHONE_TASK, SUBJECT_TASK, make_tenant
from tests.e2e.conftest import free_port
from tests.receiver import Receiver

UNKNOWN_PATIENT = {**SUBJECT_TASK, "patient_mrn": "MRN-4040"}


@pytest.fixture
async def observed(settings: Settings) -> AsyncIterator[bootstrap.Runtime]:
    port = free_port()
    observed_settings = settings.model_copy(
        update={
            "metrics_address": f"127.0.0.1:{port}",
            "webhook_allow_private": True,
            "webhook_allow_insecure": True,
        }
    )
    async with bootstrap.runtime(observed_settings, run_worker=False, observe=True) as rt:
        yield rt


async def scrape(rt: bootstrap.Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{rt.settings.metrics_address}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def run_due_jobs(rt: bootstrap.Runtime) -> None:
    """Every due job through the handlers a worker runs (with their telemetry), until none is due."""
    handlers = {
        tasks.CREATE_TASK: functools.partial(create_task.run_create_task, rt.ctx),
        webhooks.DELIVER_WEBHOOK: functools.partial(webhook_delivery.run_delivery, rt.ctx),
    }
    for _ in range(50):
        claimed = await jobs.claim(rt.engine, worker_id="t", limit=50, lease_seconds=30, now=rt.ctx.clock())
        if not claimed:
            return
        for job in claimed:
            await handlers[job.kind](job)
    raise AssertionError("jobs kept coming back")


async def grouped(rt: bootstrap.Runtime, *columns) -> dict[tuple, int]:
    async with db.read(rt.engine) as conn:
        rows = (await conn.execute(select(*columns, func.count()).group_by(*columns))).all()
    return {tuple(row[:-1]): row[-1] for row in rows}


async def test_scraped_figures_agree_with_what_happened_and_with_the_database(observed):
    rt = observed
    tenant = await make_tenant(rt)
    app = create_app(rt.ctx, telemetry=rt.telemetry)
    with Receiver() as receiver:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            hook = await api.post("/v1/webhook", json={"webhook_url": receiver.url}, headers=tenant.headers())
            assert hook.status_code == 201
            receiver.answers = [500]
            accepted = [await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a) for _ in range(3)]
            accepted.append(await api.post("/v1/tasks", json=PHONE_TASK, headers=tenant.b))
            accepted.append(await api.post("/v1/tasks", json=UNKNOWN_PATIENT, headers=tenant.a))
            assert {a.status_code for a in accepted} == {202}
            assert (
                await api.post("/v1/tasks", json=SUBJECT_TASK, headers={"client_id": "x"})
            ).status_code == 401
            task_id = accepted[0].json()["task_id"]
            assert (await api.get(f"/v1/tasks/{task_id}", headers=tenant.a)).status_code == 200
            assert (await api.get("/no/such/path/MRN-1001")).status_code == 404
            assert (await api.get("/metrics")).status_code == 404  # never on the API's port

            queued = await scrape(rt)
            assert value(queued, "emrtasks_jobs", kind="create_task", state="queued") == 5
            await run_due_jobs(rt)
    samples = await scrape(rt)

    assert value(samples, "emrtasks_http_requests_total", method="POST", route="/v1/tasks", status="202") == 5
    assert value(samples, "emrtasks_http_requests_total", method="POST", route="/v1/tasks", status="401") == 1
    assert (
        value(
            samples, "emrtasks_http_requests_total", method="GET", route="/v1/tasks/{task_id}", status="200"
        )
        == 1
    )
    assert value(samples, "emrtasks_http_requests_total", method="GET", route="unmatched", status="404") == 2
    assert (
        value(samples, "emrtasks_http_request_duration_seconds_count", method="POST", route="/v1/tasks") == 6
    )

    statuses = await grouped(rt, tables.tasks.c.status)
    assert statuses == {("created",): 4, ("failed",): 1}
    for (status,), count in statuses.items():
        assert value(samples, "emrtasks_tasks", status=status) == count
    for (kind, state), count in (await grouped(rt, tables.jobs.c.kind, tables.jobs.c.state)).items():
        assert value(samples, "emrtasks_jobs", kind=kind, state=state) == count

    assert (
        value(samples, "emrtasks_emr_calls_total", emr="sandbox", operation="create_task", outcome="created")
        == 4
    )
    assert (
        value(samples, "emrtasks_emr_calls_total", emr="sandbox", operation="search_patients", outcome="ok")
        == 5
    )
    assert (
        value(samples, "emrtasks_emr_call_duration_seconds_count", emr="sandbox", operation="create_task")
        == 4
    )

    attempts = await grouped(rt, tables.delivery_attempts.c.status_code)
    delivered = sum(count for (code,), count in attempts.items() if code and 200 <= code < 300)
    # Five events; the one answered 500 waits for its retry (seconds away on the default schedule).
    assert value(samples, "emrtasks_webhook_attempts_total", outcome="delivered") == delivered == 4
    assert value(samples, "emrtasks_webhook_attempts_total", outcome="failed") == attempts[(500,)] == 1
    assert value(samples, "emrtasks_webhook_endpoints", status="active") == 1
    assert value(samples, "emrtasks_connections", emr="sandbox", status="active") == 2
    assert value(samples, "emrtasks_database_up") == 1


async def test_the_oldest_due_job_and_a_failing_endpoint_are_reported_in_seconds(observed, clock):
    rt = observed
    rt.ctx.clock = clock
    tenant = await make_tenant(rt)
    app = create_app(rt.ctx, telemetry=rt.telemetry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    async with db.write(rt.engine) as conn:  # due two minutes ago and not run since
        await conn.execute(tables.jobs.update().values(run_at=clock.now - timedelta(minutes=2)))
    samples = await scrape(rt)
    assert value(samples, "emrtasks_jobs_oldest_due_age_seconds", kind="create_task") >= 120
    assert value(samples, "emrtasks_webhook_endpoint_failing_seconds_max") == 0
    assert (
        value(samples, "emrtasks_webhook_endpoint_disable_after_seconds")
        == rt.settings.webhook_disable_after_seconds
    )


async def test_no_patient_data_reaches_the_exposition(observed):
    rt = observed
    tenant = await make_tenant(rt)
    app = create_app(rt.ctx, telemetry=rt.telemetry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
        await api.get("/v1/tasks/MRN-1001", headers=tenant.a)
    await run_due_jobs(rt)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{rt.settings.metrics_address}/metrics")).text
    for secret in (
        "MRN-1001",
        "Review recent lab results",
        "usr_1001",
        tenant.connection_a,
        tenant.client_id,
    ):
        assert secret not in text


async def test_the_metrics_address_answers_only_get_metrics(observed):
    rt = observed
    async with httpx.AsyncClient(base_url=f"http://{rt.settings.metrics_address}") as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.post("/metrics")).status_code == 405
        assert (await http.get("/metrics?x=1")).status_code == 200


async def test_the_dashboard_the_alert_rules_and_the_docs_use_only_names_the_service_exports(observed):
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{observed.settings.metrics_address}/metrics")).text
    exported = {family.name for family in text_string_to_metric_families(text)}
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "observability.md").read_text()
    for used in ("grafana-dashboard.json", "alerts.yml", "observability.md"):
        names = set(re.findall(r"emrtasks_[a-z_]+", (root / "docs" / used).read_text()))
        assert names, used
        for name in names:
            assert re.sub(r"_(bucket|count|sum|total)$", "", name) in exported, (used, name)
    for name in exported:
        if name.startswith("emrtasks_"):
            assert f"`{name}" in docs, name


async def test_a_scrape_with_the_database_out_of_reach_says_so_and_still_answers():
    unreachable = db.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        text = (await metrics.Metrics(unreachable, disable_after_seconds=60).exposition()).decode()
    finally:
        await db.dispose(unreachable)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["emrtasks_database_up"].samples[0].value == 0
    assert "emrtasks_jobs" not in families  # no figure rather than a wrong one
    assert "emrtasks_http_requests" in families


async def test_a_broken_login_is_reported_and_a_disabled_connection_is_not_counted(observed):
    rt = observed
    tenant = await make_tenant(rt)
    second = await make_tenant(rt, "other")
    now = rt.ctx.clock()
    async with db.write(rt.engine) as conn:
        await connections.break_login(conn, tenant.connection_a, now)
        await connections.update_connection(conn, second.connection_a, now, disabled_at=now)
    samples = await scrape(rt)
    assert value(samples, "emrtasks_connections", emr="sandbox", status="login_required") == 1
    assert value(samples, "emrtasks_connections", emr="sandbox", status="active") == 2
