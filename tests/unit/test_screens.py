"""What a deployment that cannot drive screens is told: a gnuhealth_web connection's config is refused
naming the missing browser, and a task for one fails with that reason rather than a crash."""

import httpx
import pytest

from emrtasks.domain import directory, outcomes, tasks
from emrtasks.emr import base, gnuhealth_web, screens

CONFIG = {"url": "http://127.0.0.1:9", "database": "health", "username": "frontdesk", "password": "x"}


def test_a_missing_chromium_is_named_with_the_setting_that_points_at_one(monkeypatch):
    monkeypatch.setitem(screens._browser, "path", "/nonexistent/chromium")
    problems = gnuhealth_web.check_config(CONFIG)
    assert any("no Chromium at /nonexistent/chromium" in p and "EMRTASKS_BROWSER_PATH" in p for p in problems)


def test_the_config_is_accepted_when_the_browser_is_there(monkeypatch, tmp_path):
    pytest.importorskip("playwright.async_api", reason="Playwright is not installed")
    browser = tmp_path / "chromium"
    browser.write_text("")
    monkeypatch.setitem(screens._browser, "path", str(browser))
    assert gnuhealth_web.check_config(CONFIG) == []


async def test_a_task_without_a_browser_is_rejected_with_the_reason(monkeypatch):
    monkeypatch.setitem(screens._browser, "path", "/nonexistent/chromium")
    connection = tasks.Connection("con_s", "cli_s", "gnuhealth_web", "gnuhealth_web", None, "active", {})
    deps = base.AdapterDeps(sandbox_store=None, http=None)
    with pytest.raises(base.MissingDependency):  # the JSON-RPC side needs the shared client (given below)
        gnuhealth_web.build(connection, CONFIG, deps)
    async with httpx.AsyncClient() as client:
        adapter = gnuhealth_web.build(connection, CONFIG, base.AdapterDeps(sandbox_store=None, http=client))
        patient = directory.Patient("1", "GH-1", "Ava", "Thompson", "", "", "")
        request = tasks.TaskRequest(description="d", patient_mrn="GH-1", assignee_user_id="dreyes")
        outcome = await adapter.create_task(request, patient, "task_s")
    assert isinstance(outcome, outcomes.Rejected), outcome
    assert "no Chromium at /nonexistent/chromium" in outcome.description


async def test_a_kept_login_is_reused_and_made_again_once_idle_too_long():
    if screens.missing() is not None:
        pytest.skip(screens.missing() or "")
    now = [0.0]
    logins: list[object] = []

    async def log_in(page: object) -> None:
        logins.append(page)

    pool = screens.BrowserPool(renew_after=240.0, clock=lambda: now[0])
    try:
        async with pool.page("emr|db|frontdesk", log_in) as first:
            pass
        now[0] = 200.0
        async with pool.page("emr|db|frontdesk", log_in) as again:
            pass
        now[0] = 500.0  # idle 300 s since the last use
        async with pool.page("emr|db|frontdesk", log_in) as renewed:
            pass
    finally:
        await pool.close()
    assert again is first and renewed is not first
    assert logins == [first, renewed]


async def test_a_refused_login_is_never_tried_again():
    if screens.missing() is not None:
        pytest.skip(screens.missing() or "")
    tries: list[object] = []

    async def log_in(page: object) -> None:
        tries.append(page)
        raise screens.LoginRefused("refused")

    pool = screens.BrowserPool()
    try:
        for _ in range(2):
            with pytest.raises(screens.LoginRefused):
                async with pool.page("emr|db|reception", log_in):
                    pass
    finally:
        await pool.close()
    assert len(tries) == 1
