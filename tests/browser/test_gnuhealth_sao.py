"""A task written by the gnuhealth adapter, seen as a clinician sees it: GNU Health's own web client (SAO
7.0, served by trytond) in headless Chromium, logged in as the assigned professional. With
EMRTASKS_SCREENSHOTS=1 it saves the screenshots docs/emr/gnuhealth.md shows."""

import asyncio
import concurrent.futures
import re
from typing import Any

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, gnuhealth
from emrtasks.service import create_task
from tests.browser.conftest import IMAGES
from tests.gnuhealth import seed

REQUEST = tasks.TaskRequest(
    description="Asked for a call back about her thyroid results; prefers mornings.",
    patient_mrn="GH-1001",
    subject="Thyroid results call-back",
    assignee_user_id="dreyes",
)


def _write(server: Any, marker: str) -> str:
    """The task written through the adapter, in a thread of its own: Playwright's sync API holds this
    thread's event loop."""

    async def write() -> outcomes.Outcome:
        login, password, _ = seed.FRONT_DESK
        config = {"url": server.url, "database": server.database, "username": login, "password": password}
        connection = tasks.Connection("con_sao", "cli_sao", "gnuhealth", "gnuhealth", None, "active", {})
        async with httpx.AsyncClient(timeout=30) as client:
            deps = base.AdapterDeps(sandbox_store=None, http=client)
            adapter = gnuhealth.build(connection, base.with_defaults(gnuhealth.SETTINGS, config), deps)
            patient = await create_task.resolve_patient(adapter, REQUEST.patient_mrn)
            assert not isinstance(patient, outcomes.Rejected), patient
            return await adapter.create_task(REQUEST, patient, marker)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(asyncio.run, write()).result()
    assert isinstance(outcome, outcomes.Created), outcome
    return outcome.emr_task_id


def _log_in(page: Any, server: Any, login: str, password: str) -> None:
    page.goto(f"{server.url}/")
    page.locator("input#database").fill(server.database)
    page.locator("input#login").fill(login)
    page.locator("button[type=submit]").click()
    secret = page.locator("input[type=password]:visible").first  # SAO asks for it in a second step
    secret.fill(password)
    secret.press("Enter")


def test_the_assigned_professional_sees_the_appointment_in_gnu_healths_web_client(page, gnuhealth_server):
    from playwright.sync_api import expect

    if not gnuhealth_server.web:
        pytest.skip("SAO, GNU Health's web client, was not assembled (node and npm are needed)")
    record_id = _write(gnuhealth_server, "task_gh_sao")
    login, password, given, family = seed.DOCTORS[0]
    _log_in(page, gnuhealth_server, login, password)
    expect(page.get_by_text(f"Dr. {given} {family}")).to_be_visible(timeout=30_000)
    page.goto(f"{gnuhealth_server.url}/#{gnuhealth_server.database}/model/gnuhealth.appointment/{record_id}")
    comments = page.locator("textarea:visible").first
    expect(comments).to_have_value(re.compile(re.escape("[emrtasks task_gh_sao]")), timeout=30_000)
    assert REQUEST.subject in comments.input_value() and REQUEST.description in comments.input_value()
    shown = page.eval_on_selector_all("input", "found => found.map(input => input.value)")
    assert {"Thompson, Ava", "Reyes, Dana"} <= set(shown), shown  # the patient and the professional
    assert any(value.startswith("APP ") for value in shown), shown  # numbered as confirmed
    _screenshot(page, "appointment")


def _screenshot(page: Any, name: str) -> None:
    import os

    if os.environ.get("EMRTASKS_SCREENSHOTS") == "1":
        page.screenshot(path=str(IMAGES / f"gnuhealth-{name}.png"))
