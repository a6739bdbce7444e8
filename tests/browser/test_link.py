"""Link in a real browser: a clinic links the sandbox (new window, lightbox, keyboard only, without
JavaScript), a credentials EMR against its vendor fake (refused, then accepted), an OAuth EMR against a
consent page on loopback, and repairs a login_required connection in update mode. Each public token is
exchanged and its access token creates a task that ends `created`."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from emrtasks.domain.tasks import TaskRequest
from tests.browser.client_page import ClientPage
from tests.browser.conftest import NO_PLAYWRIGHT, Client, screenshot, write_json
from tests.browser.oauth_server import ConsentServer
from tests.conftest import SUBJECT_TASK
from tests.contract import harness
from tests.contract.cases.drchrono import CASE as DRCHRONO
from tests.contract.cases.openemr import CASE as OPENEMR
from tests.contract.fakes import drchrono as fake_drchrono
from tests.contract.fakes import openemr as fake_openemr
from tests.oauth_fake import FakeAuthorizationServer

sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
expect = sync_api.expect
PUBLIC_TOKEN = re.compile(r"^pt_[\w-]+$")
WRONG_PASSWORD = "wrong-horse-battery"  # what the clinic mistypes


def _body(request: TaskRequest) -> dict[str, Any]:
    body = {
        "description": request.description,
        "patient_mrn": request.patient_mrn,
        "subject": request.subject,
        "assignee_user_id": request.assignee_user_id,
        "phone_call_type_id": request.phone_call_type_id,
        "notify_list": list(request.notify_list) or None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _link_url(client: Client, token: str, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"{client.service.url}/link?token={token}{extra}"


def _received(page: Any, client_url: str) -> str:
    """The public token the client's callback page got (new-window mode)."""
    page.wait_for_url(f"{client_url}/linked?*")
    token = parse_qs(urlsplit(page.url).query)["token"][0]
    assert PUBLIC_TOKEN.match(token)
    expect(page.locator("#public-token")).to_have_text(token)
    return token


def _assert_created(client: Client, public_token: str, body: dict[str, Any]) -> str:
    access_token = client.exchange(public_token)
    task = client.task_outcome(access_token, body)
    assert task["status"] == "created", task
    return access_token


def _choose(page: Any, title: str) -> None:
    page.get_by_label(re.compile(re.escape(title))).check()
    page.get_by_role("button", name="Continue").click()


def test_a_clinic_links_the_sandbox_in_a_new_window(page, client):
    with harness.serve_fake(ClientPage(client.service.url)) as client_url:
        client.allow(_origin(client_url))
        token = client.link_token(callback_url=f"{client_url}/linked")
        page.goto(_link_url(client, token))
        expect(page.get_by_role("heading", name="Which EMR does your clinic use?")).to_be_visible()
        screenshot(page, "choose")
        _choose(page, "Built-in sandbox EMR")
        expect(page.get_by_role("heading", name="Connect Built-in sandbox EMR")).to_be_visible()
        page.get_by_label("Task rules").select_option("subject_assignee")
        screenshot(page, "sandbox-form")
        page.get_by_role("button", name="Connect").click()
        public_token = _received(page, client_url)
    _assert_created(client, public_token, SUBJECT_TASK)


def test_a_clinic_links_the_sandbox_in_the_lightbox_of_a_client_page(page, client):
    with harness.serve_fake(ClientPage(client.service.url)) as client_url:
        client.allow(_origin(client_url))
        token = client.link_token(emr_name="sandbox")
        page.goto(f"{client_url}/app?token={token}")
        page.get_by_role("button", name="Connect your EMR").click()
        frame = page.frame_locator("iframe[title='Link your EMR']")
        expect(frame.get_by_role("heading", name="Connect Built-in sandbox EMR")).to_be_visible()
        expect(page.get_by_role("dialog", name="Link your EMR")).to_be_visible()
        screenshot(page, "lightbox")
        # A message from any other origin (here the client page itself) is not Link's answer.
        page.evaluate("window.postMessage({type: 'emrtasks-link', public_token: 'pt_forged'}, '*')")
        frame.get_by_role("button", name="Connect").click()
        expect(page.locator("#result")).to_have_text(PUBLIC_TOKEN)
        expect(page.locator("iframe")).to_have_count(0)  # link.js removed its frame
        public_token = page.locator("#result").text_content()
    _assert_created(client, public_token, SUBJECT_TASK)


def test_escape_closes_the_lightbox_and_the_client_hears_of_the_exit(page, client):
    with harness.serve_fake(ClientPage(client.service.url)) as client_url:
        client.allow(_origin(client_url))
        page.goto(f"{client_url}/app?token={client.link_token()}")
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Connect your EMR")).to_be_focused()
        page.keyboard.press("Enter")
        frame = page.frame_locator("iframe[title='Link your EMR']")
        expect(frame.get_by_role("heading", name="Which EMR does your clinic use?")).to_be_visible()
        expect(frame.get_by_label(re.compile("Built-in sandbox EMR"))).to_be_focused()  # focus moved in
        page.keyboard.press("Tab")
        expect(frame.get_by_role("button", name="Continue")).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator("#exit")).to_have_text("exited")
        expect(page.locator("iframe")).to_have_count(0)
        expect(page.get_by_role("button", name="Connect your EMR")).to_be_focused()


def test_a_page_on_an_origin_the_client_did_not_allow_cannot_frame_link(page, client):
    with harness.serve_fake(ClientPage(client.service.url)) as client_url:
        client.allow("https://app.example.com")  # not the page's origin
        page.goto(f"{client_url}/app?token={client.link_token(emr_name='sandbox')}")
        with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refused:
            page.get_by_role("button", name="Connect your EMR").click()
        assert '"frame-ancestors https://app.example.com"' in refused.value.text
        assert "blocked" in refused.value.text
        frame = page.frame_locator("iframe[title='Link your EMR']")
        expect(frame.get_by_role("heading")).to_have_count(0)


def test_the_sandbox_flow_completes_with_the_keyboard_alone(page, client):
    token = client.link_token()
    page.goto(_link_url(client, token))
    _tab_to(page, "radio", "sandbox")
    page.keyboard.press("Space")
    _tab_to(page, "button", "Continue")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Connect Built-in sandbox EMR")).to_be_visible()
    _tab_to(page, "select", "rules")
    _tab_to(page, "button", "Connect")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    screenshot(page, "done")
    public_token = page.locator("#public-token").text_content()
    assert PUBLIC_TOKEN.match(public_token)
    _assert_created(client, public_token, SUBJECT_TASK)


def _tab_to(page: Any, kind: str, name: str, limit: int = 12) -> None:
    """Press Tab until the focused element is this control (by tag or type, and name or text)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement; return [e.tagName.toLowerCase(), e.type || '',"
            " e.name || '', e.value || '', (e.textContent || '').trim()]; }"
        )
        if kind in focused[:2] and name in focused[2:]:
            return
    raise AssertionError(f"Tab never reached the {kind} {name!r}")


def test_the_page_works_without_javascript_in_a_new_window(browser, client):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        with harness.serve_fake(ClientPage(client.service.url)) as client_url:
            client.allow(_origin(client_url))
            token = client.link_token(callback_url=f"{client_url}/linked")
            page.goto(_link_url(client, token))
            _choose(page, "Built-in sandbox EMR")
            page.get_by_role("button", name="Connect").click()
            public_token = _received(page, client_url)
    finally:
        context.close()
    _assert_created(client, public_token, SUBJECT_TASK)


def _fill_openemr(page: Any, emr_url: str, password: str) -> None:
    page.get_by_label("Base URL").fill(emr_url)
    page.get_by_label("Client ID").fill(fake_openemr.CLIENT_ID)
    _client_secret(page).fill(fake_openemr.CLIENT_SECRET)
    page.get_by_label("Username").fill(fake_openemr.USERNAME)
    page.get_by_label("Password").fill(password)


def _client_secret(page: Any) -> Any:
    """OpenEMR's client secret is optional (public clients have none): under "More settings"."""
    field = page.get_by_label("Client secret")
    if not field.is_visible():
        page.get_by_text("More settings (optional)").click()
    return field


def test_a_credentials_emr_refuses_a_wrong_password_then_accepts_the_right_one(page, client):
    fake = fake_openemr.FakeOpenEmr()
    with (
        harness.serve_fake(fake) as emr_url,
        harness.serve_fake(ClientPage(client.service.url)) as client_url,
    ):
        client.allow(_origin(client_url))
        token = client.link_token(emr_name="openemr", callback_url=f"{client_url}/linked")
        page.goto(_link_url(client, token))
        expect(page.get_by_role("heading", name="Connect OpenEMR (patient message)")).to_be_visible()
        _fill_openemr(page, emr_url, WRONG_PASSWORD)
        page.get_by_role("button", name="Connect").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The EMR refused these credentials.")
        expect(alert).to_contain_text("4 tries left")
        screenshot(page, "refused")
        source = page.content()
        for secret in (WRONG_PASSWORD, fake_openemr.CLIENT_SECRET):
            assert secret not in source
        expect(page.get_by_label("Username")).to_have_value(fake_openemr.USERNAME)
        expect(page.get_by_label("Password")).to_have_value("")
        _client_secret(page).fill(fake_openemr.CLIENT_SECRET)
        page.get_by_label("Password").fill(fake_openemr.PASSWORD)
        page.get_by_role("button", name="Connect").click()
        public_token = _received(page, client_url)
        _assert_created(client, public_token, _body(OPENEMR.request))
    assert len(fake.created) == 1
    assert not fake.spec_violations
    logs = client.service.log()
    for secret in (WRONG_PASSWORD, fake_openemr.PASSWORD, fake_openemr.CLIENT_SECRET, token, public_token):
        assert secret not in logs


def test_an_oauth_emr_links_by_consent_at_its_authorization_server(page, client, tmp_path: Path):
    emr = fake_drchrono.FakeDrChrono()

    def tokens() -> dict[str, Any]:
        emr.refresh_tokens.add("linked-refresh")
        return {"access_token": emr.issue_token(), "refresh_token": "linked-refresh", "expires_in": 172800}

    checker = FakeAuthorizationServer(
        client_id=fake_drchrono.CLIENT_ID, client_secret=fake_drchrono.CLIENT_SECRET, tokens=tokens
    )
    consent = ConsentServer(checker)
    with (
        harness.serve_fake(emr) as emr_url,
        harness.serve_fake(consent) as auth_url,
        harness.serve_fake(ClientPage(client.service.url)) as client_url,
    ):
        app = {
            "base_url": emr_url,
            "client_id": fake_drchrono.CLIENT_ID,
            "client_secret": fake_drchrono.CLIENT_SECRET,
            "oauth_authorize_url": f"{auth_url}/o/authorize/",
            "oauth_token_url": f"{auth_url}/o/token/",
        }
        config = write_json(tmp_path / "drchrono-app.json", app)
        client.service.cli("apps", "set", "--emr", "drchrono", "--config-file", str(config))
        client.allow(_origin(client_url))
        token = client.link_token(emr_name="drchrono", callback_url=f"{client_url}/linked")
        page.goto(_link_url(client, token))
        expect(page.get_by_role("heading", name="Connect DrChrono (task)")).to_be_visible()
        page.get_by_label("Task status ID").fill(str(fake_drchrono.OPEN_STATUS))
        screenshot(page, "oauth-form")
        page.get_by_role("button", name="Continue to DrChrono (task)").click()
        page.wait_for_url(f"{auth_url}/o/authorize/?*")
        page.get_by_role("button", name="Deny").click()
        expect(page.get_by_role("alert")).to_contain_text("The EMR did not grant access (access_denied).")
        expect(page.get_by_role("heading", name="Connect DrChrono (task)")).to_be_visible()  # try again
        page.get_by_label("Task status ID").fill(str(fake_drchrono.OPEN_STATUS))
        page.get_by_role("button", name="Continue to DrChrono (task)").click()
        page.wait_for_url(f"{auth_url}/o/authorize/?*")
        screenshot(page, "oauth-consent")
        page.get_by_role("button", name="Approve").click()
        public_token = _received(page, client_url)
        _assert_created(client, public_token, _body(DRCHRONO.request))
    denied, asked = checker.authorize_queries
    assert denied["state"] != asked["state"]  # a new state for each consent
    assert asked["redirect_uri"] == f"{client.service.url}/link/oauth/callback"
    assert checker.token_forms[0]["code_verifier"]  # PKCE: the verifier behind the challenge
    assert len(emr.created) == 1


def test_update_mode_brings_back_a_login_required_connection(page, client):
    fake = fake_openemr.FakeOpenEmr()
    with (
        harness.serve_fake(fake) as emr_url,
        harness.serve_fake(ClientPage(client.service.url)) as client_url,
    ):
        client.allow(_origin(client_url))
        token = client.link_token(emr_name="openemr", callback_url=f"{client_url}/linked")
        page.goto(_link_url(client, token))
        _fill_openemr(page, emr_url, fake_openemr.PASSWORD)
        page.get_by_role("button", name="Connect").click()
        access_token = _assert_created(client, _received(page, client_url), _body(OPENEMR.request))

        fake.refuse_credentials = True  # the practice changed the API client's secret
        fake.expire_tokens()
        broken = client.task_outcome(access_token, _body(OPENEMR.request))
        assert [r["code"] for r in broken["reasons"]] == ["LOGIN_REQUIRED"], broken
        events = client.http.get(
            "/v1/webhook-events", params={"event_type": "login_required"}, headers=client.credentials
        ).json()["webhook_events"]
        assert len(events) == 1
        fake.refuse_credentials = False

        repair = client.link_token(access_token=access_token, callback_url=f"{client_url}/linked")
        page.goto(_link_url(client, repair))
        expect(page.get_by_role("heading", name="Sign in again to OpenEMR (patient message)")).to_be_visible()
        expect(page.get_by_role("link", name="Choose another EMR")).to_have_count(0)
        screenshot(page, "update-mode")
        _fill_openemr(page, emr_url, fake_openemr.PASSWORD)
        page.get_by_role("button", name="Connect").click()
        again = client.exchange(_received(page, client_url))
        assert again == access_token  # update mode keeps the connection and its access token
        task = client.task_outcome(access_token, _body(OPENEMR.request))
    assert task["status"] == "created", task
