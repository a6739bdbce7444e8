"""The gnuhealth_web adapter against a real GNU Health and its web client in headless Chromium: a browser
that dies just after Save leaves the outcome to the lookup by marker, and the appointment is never
written twice."""

import dataclasses
from typing import Any

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, gnuhealth_web, screens
from emrtasks.service import create_task, screen_evidence
from emrtasks.storage import crypto
from tests.gnuhealth import test_adapter


@pytest.fixture
def sao(gnuhealth_server: Any) -> Any:
    missing = screens.missing()
    if missing is not None:
        pytest.skip(missing)
    if not gnuhealth_server.web:
        pytest.skip("SAO, GNU Health's web client, was not assembled (node and npm are needed)")
    return gnuhealth_server


class _KilledAfterSave(gnuhealth_web.GnuHealthWebAdapter):
    """Chromium is closed the moment Save has been clicked, as if the worker's browser crashed."""

    async def _saved(self, page: Any, marker: str) -> outcomes.Outcome:
        await page.context.browser.close()
        return await super()._saved(page, marker)


async def test_a_browser_killed_after_save_is_looked_up_by_marker_and_never_written_twice(sao):
    pool = screens.BrowserPool()
    connection = tasks.Connection("con_ghw", "cli_ghw", "gnuhealth_web", "gnuhealth_web", None, "active", {})
    settings = base.with_defaults(gnuhealth_web.SETTINGS, test_adapter.config(sao))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            deps = base.AdapterDeps(sandbox_store=None, http=client)
            api = gnuhealth_web.gnuhealth.build(connection, settings, deps)
            killed = _KilledAfterSave(settings, api, pool)
            patient = await create_task.resolve_patient(killed, test_adapter.REQUEST.patient_mrn)
            assert not isinstance(patient, outcomes.Rejected), patient
            first = await killed.create_task(test_adapter.REQUEST, patient, "task_ghw_killed")
            again = gnuhealth_web.GnuHealthWebAdapter(settings, api, pool)
            second = await again.create_task(test_adapter.REQUEST, patient, "task_ghw_killed")
    finally:
        await pool.close()
    assert isinstance(first, outcomes.Created | outcomes.Unknown), first
    assert isinstance(second, outcomes.Created), second
    found = test_adapter.appointments(
        test_adapter.as_doctor(sao), [("comments", "ilike", "%[emrtasks task_ghw_killed]%")]
    )
    assert [str(a["id"]) for a in found] == [second.emr_task_id]


async def test_a_step_that_fails_keeps_the_screen_encrypted_for_the_operator(sao, tmp_path, monkeypatch):
    """The patient named in the request is not the one SAO's search shows: the write stops before Save,
    and the screenshot and page text of that moment are kept, readable only with the key."""
    monkeypatch.setattr(screens, "STEP_SECONDS", 3.0)  # how long a search may take to match: not 30 s
    pool = screens.BrowserPool()
    keeper = screen_evidence.Keeper(tmp_path, crypto.Cipher(crypto.parse_key(crypto.new_key())), 60.0)
    connection = tasks.Connection("con_ghe", "cli_ghe", "gnuhealth_web", "gnuhealth_web", None, "active", {})
    settings = base.with_defaults(gnuhealth_web.SETTINGS, test_adapter.config(sao))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            deps = base.AdapterDeps(sandbox_store=None, http=client)
            api = gnuhealth_web.gnuhealth.build(connection, settings, deps)
            adapter = gnuhealth_web.GnuHealthWebAdapter(settings, api, pool, keeper.keep)
            patient = await create_task.resolve_patient(adapter, test_adapter.REQUEST.patient_mrn)
            assert not isinstance(patient, outcomes.Rejected), patient
            renamed = dataclasses.replace(patient, last_name="Nobody")
            outcome = await adapter.create_task(test_adapter.REQUEST, renamed, "task_ghw_evidence")
    finally:
        await pool.close()
    assert isinstance(outcome, outcomes.RetryLater), outcome
    [kept] = [p.name for p in tmp_path.iterdir()]
    assert kept in outcome.description
    found = keeper.read(kept)
    assert found.screenshot.startswith(b"\x89PNG") and "Thompson, Ava" in found.text
    assert "Thompson" not in (tmp_path / kept).read_text()
