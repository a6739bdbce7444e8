"""The operator console in a real browser against `emrtasks serve` with its worker, and a webhook
receiver on loopback: an admin signs in with the keyboard, finds a failed task by filter, opens its
timeline, resends its event and sees the new attempt; a viewer has no button to resend and is refused
when posting anyway; a form with a tampered CSRF token is refused. With EMRTASKS_SCREENSHOTS=1 the
tests save the screenshots docs/console.md shows."""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import IMAGES, NO_PLAYWRIGHT
from tests.conftest import SUBJECT_TASK
from tests.e2e.conftest import Service, wait_for_task
from tests.receiver import Receiver

sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
pytestmark = pytest.mark.e2e
expect = sync_api.expect
PASSWORD = "correct horse battery"
ADMIN, VIEWER = "admin@example.com", "viewer@example.com"


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("EMRTASKS_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=True)


@dataclass
class World:
    service: Service
    receiver: Receiver
    failed_task: str
    connection_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One service for the module: a client whose webhook reaches the receiver, three created tasks
    and one failed (an MRN the sandbox does not know), each delivered once; an admin and a viewer."""
    tmp = tmp_path_factory.mktemp("console")
    env = {
        **os.environ,
        "EMRTASKS_KEY_FILE": str(tmp / "emrtasks.key"),
        "EMRTASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'console.db'}",
        "EMRTASKS_SQLITE_SYNCHRONOUS": "NORMAL",
        "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
        "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    service = Service(env, tmp)
    service.start()
    try:
        with Receiver() as receiver:
            yield _populate(service, receiver, tmp)
    finally:
        service.stop()


def _populate(service: Service, receiver: Receiver, tmp: Path) -> World:
    password = tmp / "password"
    password.write_text(PASSWORD + "\n")
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer")):
        service.cli("operators", "create", "--email", email, "--role", role, "--password-file", str(password))
    headers = service.connect("sandbox", {}, name="Example Scribe", rules="subject_assignee")
    connections = service.cli("connections", "list")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        client = {"client_id": headers["client_id"], "client_secret": headers["client_secret"]}
        registered = http.post("/v1/webhook", json={"webhook_url": receiver.url}, headers=client)
        assert registered.status_code == 201, registered.text
        receiver.secrets.append(registered.json()["webhook_secret"])
        bodies = [SUBJECT_TASK] * 3 + [{**SUBJECT_TASK, "patient_mrn": "MRN-NOBODY"}]
        task_ids = [http.post("/v1/tasks", json=b, headers=headers).json()["task_id"] for b in bodies]
        outcomes = [wait_for_task(http, headers, t)["status"] for t in task_ids]
    assert outcomes == ["created", "created", "created", "failed"]
    receiver.wait_for(lambda r: len(r.verified()) == 4)
    return World(service, receiver, task_ids[-1], connections[0]["connection_id"])  # type: ignore[index]


def _sign_in(page: Any, world: World, email: str) -> None:
    page.goto(f"{world.service.url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_an_admin_finds_a_failed_task_resends_its_event_and_sees_the_new_attempt(page, world):
    page.goto(f"{world.service.url}/console")
    expect(page.get_by_label("Email")).to_be_focused()  # keyboard only from here
    screenshot(page, "sign-in")
    page.keyboard.type(ADMIN)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#total-created")).to_have_text("3")
    expect(page.locator("#total-failed")).to_have_text("1")
    expect(page.locator("#webhook-success")).to_have_text("100.0 %")
    screenshot(page, "overview")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Tasks").click()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Find").click()
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(1)
    screenshot(page, "tasks")
    rows.get_by_role("link", name=world.failed_task).click()

    expect(page.locator("#task-status")).to_have_text("failed")
    expect(page.get_by_text("PATIENT_NOT_FOUND").first).to_be_visible()
    delivery = page.locator("table.attempts caption")
    expect(delivery).to_contain_text("success, 1 attempt")
    screenshot(page, "timeline")
    page.get_by_role("button", name="Resend task.failed").click()
    expect(page.get_by_role("status")).to_contain_text("scheduled again")
    for _ in range(200):  # the worker sends it in the background: look again until it is there
        if "2 attempts" in (delivery.text_content() or ""):
            break
        page.wait_for_timeout(50)
        page.reload()
    expect(delivery).to_contain_text("success, 2 attempts")
    expect(page.locator("table.attempts tbody tr").last).to_contain_text("manual")
    world.receiver.wait_for(lambda r: len(r.verified()) == 5)
    assert world.receiver.verified()[-1].event["type"] == "task.failed"
    screenshot(page, "resent")


def test_a_viewer_sees_the_timeline_without_a_resend_button_and_a_posted_resend_is_refused(context, world):
    page = context.new_page()
    _sign_in(page, world, VIEWER)
    page.goto(f"{world.service.url}/console/tasks/{world.failed_task}")
    expect(page.locator("#task-status")).to_have_text("failed")
    expect(page.get_by_role("button", name=re.compile("Resend"))).to_have_count(0)
    event_id = re.search(r"evt_\w+", page.locator("li.event").first.text_content() or "").group(0)  # type: ignore[union-attr]
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{world.service.url}/console/events/{event_id}/resend",
        form={"csrf": csrf, "task_id": world.failed_task},
        max_redirects=0,
    )
    assert answer.status == 403 and "only an admin can act" in answer.text()


def test_a_form_whose_csrf_token_was_tampered_with_is_refused(context, world):
    page = context.new_page()
    _sign_in(page, world, ADMIN)
    page.goto(f"{world.service.url}/console/connections")
    expect(page.get_by_role("cell", name=re.compile(world.connection_id))).to_be_visible()
    screenshot(page, "connections")
    form = page.locator(f"form[action='/console/connections/{world.connection_id}/disable']")
    form.locator("input[name=csrf]").evaluate("input => { input.value = '0'.repeat(64) }")
    form.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("alert")).to_contain_text("not sent from a console page")
    page.goto(f"{world.service.url}/console/connections")
    expect(page.locator(".status.active")).to_have_count(1)  # still active
