"""The console's task pages and actions in process over HTTP: filters, a task's timeline (and its
`task.read` audit row), resend and retry by an admin, refused for a viewer or a forged form, and the
overview's figures."""

import dataclasses
import functools
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from emrtasks.queue import jobs
from emrtasks.service import create_task, operators, tasks, webhook_delivery, webhooks
from emrtasks.storage import db, tables
from tests.api.console_helpers import audit_rows, browser, console_app, csrf_of, make_operator, sign_in
from tests.conftest import SUBJECT_TASK, make_tenant

UNKNOWN_PATIENT = {**SUBJECT_TASK, "patient_mrn": "MRN-NOBODY"}


@pytest.fixture
async def app(runtime):
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)
    async with console_app(runtime) as found:
        yield found


@pytest.fixture
async def admin(app, runtime):
    await make_operator(runtime, "admin@example.com")
    async with browser(app) as client:
        await sign_in(client, "admin@example.com")
        yield client


@pytest.fixture
async def viewer(app, runtime):
    await make_operator(runtime, "viewer@example.com", operators.VIEWER)
    async with browser(app) as client:
        await sign_in(client, "viewer@example.com")
        yield client


async def drain(rt):
    """Every due job, deliveries too (to a closed port on loopback: each attempt fails at once)."""
    handlers = {
        tasks.CREATE_TASK: functools.partial(create_task.run_create_task, rt.ctx),
        webhooks.DELIVER_WEBHOOK: functools.partial(webhook_delivery.run_delivery, rt.ctx),
    }
    for _ in range(20):
        claimed = await jobs.claim(
            rt.engine, worker_id="tests", limit=50, lease_seconds=30, now=rt.ctx.clock()
        )
        if not claimed:
            return
        for job in claimed:
            await handlers[job.kind](job)
    raise AssertionError("jobs kept coming back")


async def _task(api, headers, body):
    answer = await api.post("/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()["task_id"]


async def _with_endpoint(api, tenant):
    answer = await api.post(
        "/v1/webhook", headers=tenant.headers(), json={"webhook_url": "http://127.0.0.1:9/h"}
    )
    assert answer.status_code == 201, answer.text


async def _count(runtime, table, *where):
    async with db.read(runtime.engine) as conn:
        return len((await conn.execute(select(table).where(*where))).all())


async def test_tasks_are_found_by_status_and_connection_without_their_content(admin, runtime, tenant):
    failed = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    created = await _task(admin, tenant.a, SUBJECT_TASK)
    await drain(runtime)
    answer = await admin.get(
        "/console/tasks", params={"status": "failed", "connection_id": tenant.connection_a}
    )
    assert answer.status_code == 200
    assert failed in answer.text and created not in answer.text
    assert "MRN-NOBODY" not in answer.text and SUBJECT_TASK["description"] not in answer.text
    other = await admin.get("/console/tasks", params={"connection_id": tenant.connection_b})
    assert failed not in other.text and "No task matches." in other.text


async def test_a_time_range_limits_the_tasks(admin, runtime, tenant, clock):
    early = await _task(admin, tenant.a, SUBJECT_TASK)
    clock.advance(1200)  # within the session's idle time
    late = await _task(admin, tenant.a, SUBJECT_TASK)
    since = clock.now.replace(tzinfo=None, microsecond=0).isoformat(timespec="minutes")
    answer = await admin.get("/console/tasks", params={"since": since})
    assert late in answer.text and early not in answer.text


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"status": "lost"}, "Invalid status"),
        ({"since": "yesterday"}, "From:"),
        ({"client_id": "x" * 99}, "client_id"),
    ],
)
async def test_a_bad_filter_is_400_naming_it(admin, query, words):
    answer = await admin.get("/console/tasks", params=query)
    assert answer.status_code == 400 and words in answer.text


async def test_a_tasks_timeline_shows_the_outcome_and_each_attempt_and_is_audited(admin, runtime, tenant):
    await _with_endpoint(admin, tenant)
    task_id = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    await drain(runtime)
    page = await admin.get(f"/console/tasks/{task_id}")
    assert page.status_code == 200
    assert "MRN-NOBODY" in page.text and "PATIENT_NOT_FOUND" in page.text
    assert "task.failed" in page.text and "To http://127.0.0.1:9/h: pending, 1 attempt" in page.text
    assert "1 attempt of 8" in page.text
    [read] = await audit_rows(runtime, "task.read")
    assert read["actor_id"].startswith("operator:op_") and read["targets"] == {"task_id": task_id}
    assert "MRN-NOBODY" not in str(read)


async def test_an_unknown_task_id_is_404(admin):
    assert (await admin.get("/console/tasks/task_01nothere")).status_code == 404


async def _resend_form(client, task_id):
    page = await client.get(f"/console/tasks/{task_id}")
    event_id = re.search(r'action="/console/events/(evt_\w+)/resend"', page.text)
    return page, event_id.group(1) if event_id else None


async def test_an_admin_resends_a_tasks_event_and_it_is_on_the_trail(admin, runtime, tenant):
    await _with_endpoint(admin, tenant)
    task_id = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    await drain(runtime)
    page, event_id = await _resend_form(admin, task_id)
    assert await _count(runtime, tables.delivery_attempts) == 1  # its retry is not due yet
    answer = await admin.post(
        f"/console/events/{event_id}/resend", data={"csrf": csrf_of(page.text), "task_id": task_id}
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/console/tasks/{task_id}?done=resent"
    await drain(runtime)  # due now: a second attempt
    assert await _count(runtime, tables.delivery_attempts) == 2
    assert (
        "To http://127.0.0.1:9/h: pending, 2 attempts" in (await admin.get(answer.headers["location"])).text
    )
    [row] = await audit_rows(runtime, "event.resend")
    assert row["actor_id"].startswith("operator:") and row["outcome"] == "success"
    assert row["targets"] == {"event_id": event_id}


async def test_a_viewer_sees_no_resend_button_and_a_posted_resend_is_403(app, admin, viewer, runtime, tenant):
    await _with_endpoint(admin, tenant)
    task_id = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    await drain(runtime)
    _, event_id = await _resend_form(admin, task_id)
    page, none = await _resend_form(viewer, task_id)
    assert none is None
    answer = await viewer.post(f"/console/events/{event_id}/resend", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 403 and "only an admin can act" in answer.text
    await drain(runtime)
    assert await _count(runtime, tables.delivery_attempts) == 1
    [row] = await audit_rows(runtime, "event.resend")
    assert row["outcome"] == "denied"


async def test_a_resend_with_a_wrong_csrf_token_is_403_and_changes_nothing(admin, runtime, tenant):
    await _with_endpoint(admin, tenant)
    task_id = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    await drain(runtime)
    _, event_id = await _resend_form(admin, task_id)
    answer = await admin.post(
        f"/console/events/{event_id}/resend", data={"csrf": "f" * 64, "task_id": task_id}
    )
    assert answer.status_code == 403 and "not sent from a console page" in answer.text
    await drain(runtime)
    assert await _count(runtime, tables.delivery_attempts) == 1  # nothing was made due


async def _unknown_task(admin, runtime):
    """A task the sandbox wrote but whose reply was lost, with no attempt left: it ends `unknown`."""
    lossy = await make_tenant(runtime, "lossy", unknown_rate=1.0)
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, task_max_attempts=1)
    task_id = await _task(admin, lossy.a, SUBJECT_TASK)
    await drain(runtime)
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, task_max_attempts=8)
    return lossy, task_id


async def test_retrying_an_unknown_task_finds_it_by_marker_and_writes_no_second_emr_task(admin, runtime):
    lossy, task_id = await _unknown_task(admin, runtime)
    page = await admin.get(f"/console/tasks/{task_id}")
    assert "Retry this task" in page.text and 'id="task-status">unknown' in page.text
    assert "looks it up and writes only if it is not there" in page.text  # the sandbox finds by marker
    answer = await admin.post(
        f"/console/tasks/{task_id}/retry",
        data={"csrf": csrf_of(page.text), "reason": "Not in the EMR's task list", "confirm": "yes"},
    )
    assert answer.status_code == 303 and "done=retried" in answer.headers["location"]
    await drain(runtime)
    task = (await admin.get(f"/v1/tasks/{task_id}", headers=lossy.a)).json()["task"]
    assert task["status"] == "created"
    emr = (await admin.get(f"/v1/sandbox/emr-tasks?marker={task_id}", headers=lossy.a)).json()
    assert [t["emr_task_id"] for t in emr["emr_tasks"]] == [task["emr_task_id"]]
    [row] = await audit_rows(runtime, "task.retry")
    assert row["targets"] == {"task_id": task_id, "reason": "Not in the EMR's task list"}
    assert row["connection_id"] == lossy.connection_a
    assert "Not in the EMR" in (await admin.get(f"/console/tasks/{task_id}")).text


@pytest.mark.parametrize(
    ("form", "status", "words"),
    [
        ({"reason": "checked", "confirm": ""}, 400, "Tick the box"),
        ({"reason": " ", "confirm": "yes"}, 400, "Give a reason"),
    ],
)
async def test_a_retry_needs_the_confirmation_and_a_reason(admin, runtime, form, status, words):
    _, task_id = await _unknown_task(admin, runtime)
    page = await admin.get(f"/console/tasks/{task_id}")
    answer = await admin.post(f"/console/tasks/{task_id}/retry", data={"csrf": csrf_of(page.text), **form})
    assert answer.status_code == status and words in answer.text
    assert 'id="task-status">unknown' in (await admin.get(f"/console/tasks/{task_id}")).text


async def test_only_a_task_that_ended_unknown_can_be_retried(admin, runtime, tenant):
    task_id = await _task(admin, tenant.a, UNKNOWN_PATIENT)
    await drain(runtime)
    page = await admin.get(f"/console/tasks/{task_id}")
    assert "Retry this task" not in page.text
    answer = await admin.post(
        f"/console/tasks/{task_id}/retry", data={"csrf": csrf_of(page.text), "reason": "x", "confirm": "yes"}
    )
    assert answer.status_code == 409 and "this one is failed" in answer.text
    [row] = await audit_rows(runtime, "task.retry")
    assert row["outcome"] == "failed"


async def test_the_overview_counts_the_last_day_and_names_what_needs_a_person(admin, runtime, tenant, clock):
    await _with_endpoint(admin, tenant)
    for body in (SUBJECT_TASK, SUBJECT_TASK, UNKNOWN_PATIENT):
        await _task(admin, tenant.a, body)
    await drain(runtime)
    from tests.api.helpers import expire_login

    await expire_login(runtime, tenant.connection_b)
    page = await admin.get("/console")
    assert re.search(r'id="total-created">2<', page.text) and re.search(r'id="total-failed">1<', page.text)
    assert "<svg" in page.text and page.text.count('class="bar created"') == 1
    assert "deliver_webhook" in page.text  # three deliveries queued
    assert tenant.connection_b in page.text
    async with db.write(runtime.engine) as conn:  # as if they had been accepted a day and an hour ago
        await conn.execute(tables.tasks.update().values(created_at=clock.now - timedelta(hours=25)))
    later = await admin.get("/console")
    assert re.search(r'id="total-created">0<', later.text)
