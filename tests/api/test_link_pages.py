"""The Link pages in process: what a clinic's browser is sent (HTML, headers, CSRF), and what the
forms do through the Link service. The browser itself drives them in tests/browser."""

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.service import link
from emrtasks.web import link as web_link
from emrtasks.web.link import guard
from tests.conftest import Tenant

CREATE = "/v1/link/token/create"
APP = "http://127.0.0.1:5173"


@pytest.fixture
async def pages(runtime: bootstrap.Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.ctx)
    web_link.install(app, b"k" * 32)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _token(pages: httpx.AsyncClient, tenant: Tenant, **extra: str) -> str:
    body = {"user_id": "u-1", "org_id": "o-1", **extra}
    answer = await pages.post(CREATE, json=body, headers=tenant.headers())
    assert answer.status_code == 200, answer.json()
    token: str = answer.json()["token"]
    return token


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def _assert_link_headers(answer: httpx.Response, ancestors: str) -> None:
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert f"frame-ancestors {ancestors}" in csp
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_an_unknown_link_token_gets_a_plain_page_that_no_one_may_frame(pages):
    answer = await pages.get("/link", params={"token": "lt_nope"})
    assert answer.status_code == 400
    assert link.UNKNOWN_LINK_TOKEN in answer.text
    _assert_link_headers(answer, "'none'")


async def test_the_page_lists_the_catalogue_and_only_allowed_origins_may_frame_it(pages, runtime, tenant):
    await link.set_allowed_origins(runtime.ctx, tenant.client_id, [APP, "https://app.example.com"])
    token = await _token(pages, tenant)
    answer = await pages.get("/link", params={"token": token})
    assert answer.status_code == 200
    assert 'value="sandbox"' in answer.text and "Which EMR does your clinic use?" in answer.text
    assert "<label" in answer.text
    _assert_link_headers(answer, f"{APP} https://app.example.com")
    assert "<script" not in answer.text  # new-window mode needs no script at all


async def test_choosing_an_emr_shows_its_form_built_from_the_fields_the_clinic_enters(pages, tenant):
    token = await _token(pages, tenant)
    chooser = await pages.get("/link", params={"token": token})
    chosen = await pages.post(
        "/link/choose", data={"token": token, "csrf": _csrf(chooser.text), "mode": "window", "emr": "openemr"}
    )
    assert chosen.status_code == 303
    form = await pages.get(chosen.headers["location"])
    assert form.status_code == 200
    assert 'name="s_password" type="password"' in form.text
    assert 'for="f-username"' in form.text and 'id="f-username"' in form.text
    _assert_link_headers(form, "'none'")


async def test_a_form_without_the_sessions_csrf_token_is_refused(pages, tenant):
    token = await _token(pages, tenant)
    for csrf in (None, "0" * 64, guard.csrf_token(b"another key" * 3, "link_x")):
        data = {"token": token, "mode": "window", "emr": "sandbox"}
        if csrf:
            data["csrf"] = csrf
        answer = await pages.post("/link/credentials", data=data)
        assert answer.status_code == 403, csrf
        assert "not sent from the Link page" in answer.text


async def test_a_sandbox_link_redirects_to_the_callback_with_a_public_token_that_exchanges(
    pages, runtime, tenant
):
    await link.set_allowed_origins(runtime.ctx, tenant.client_id, [APP])
    token = await _token(pages, tenant, emr_name="sandbox", callback_url=f"{APP}/linked?step=2")
    form = await pages.get("/link", params={"token": token})
    assert "Connect Built-in sandbox EMR" in form.text
    answer = await pages.post(
        "/link/credentials",
        data={
            "token": token,
            "csrf": _csrf(form.text),
            "mode": "window",
            "emr": "sandbox",
            "rules": "phone_call",
        },
    )
    assert answer.status_code == 303
    _assert_link_headers(answer, APP)
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP}/linked"
    public_token = parse_qs(location.query)["token"][0]
    exchanged = await pages.get(
        "/v1/link/token/exchange", params={"public_token": public_token}, headers=tenant.headers()
    )
    settings = await pages.get("/v1/settings", headers=tenant.headers(exchanged.json()["token"]))
    assert settings.json()["data"]["emr"] == "sandbox"
    again = await pages.get("/link", params={"token": token})
    assert (again.status_code, link.USED_LINK_TOKEN in again.text) == (400, True)


async def test_in_a_lightbox_the_page_hands_the_public_token_to_its_script_not_a_redirect(
    pages, runtime, tenant
):
    await link.set_allowed_origins(runtime.ctx, tenant.client_id, [APP])
    token = await _token(pages, tenant, emr_name="sandbox", callback_url=f"{APP}/linked")
    form = await pages.get("/link", params={"token": token, "mode": "lightbox"})
    assert '<script src="/link/static/lightbox.js"></script>' in form.text
    answer = await pages.post(
        "/link/credentials",
        data={"token": token, "csrf": _csrf(form.text), "mode": "lightbox", "emr": "sandbox"},
    )
    assert answer.status_code == 200
    found = re.search(r'data-public-token="(pt_[^"]+)"', answer.text)
    assert found
    assert f'data-origins="[&#34;{APP}&#34;]"' in answer.text
    _assert_link_headers(answer, APP)


async def test_without_a_callback_the_result_is_shown_plainly(pages, tenant):
    token = await _token(pages, tenant, emr_name="sandbox")
    form = await pages.get("/link", params={"token": token})
    answer = await pages.post(
        "/link/credentials",
        data={"token": token, "csrf": _csrf(form.text), "mode": "window", "emr": "sandbox"},
    )
    assert answer.status_code == 200
    assert re.search(r'<code class="token" id="public-token">pt_[\w-]+</code>', answer.text)
    assert "<script" not in answer.text


async def test_bad_settings_are_named_inline_and_the_secret_is_never_sent_back(pages, tenant):
    token = await _token(pages, tenant, emr_name="openemr")
    form = await pages.get("/link", params={"token": token})
    secret = "hunter2-never-shown"
    answer = await pages.post(
        "/link/credentials",
        data={
            "token": token,
            "csrf": _csrf(form.text),
            "mode": "window",
            "emr": "openemr",
            "s_base_url": "not a url",
            "s_username": "dreyes",
            "s_password": secret,
            "s_client_id": "abc",
        },
    )
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text and "Invalid settings for openemr" in answer.text
    assert 'value="dreyes"' in answer.text
    assert secret not in answer.text


async def test_a_form_that_is_not_urlencoded_or_too_large_is_refused_plainly(pages, tenant):
    token = await _token(pages, tenant)
    as_json = await pages.post("/link/credentials", json={"token": token})
    huge = await pages.post("/link/credentials", data={"token": token, "s_x": "y" * 70_000})
    for answer in (as_json, huge):
        assert answer.status_code == 400
        assert "This form could not be read" in answer.text


async def test_link_js_is_javascript_that_browsers_cache_and_revalidate(pages):
    answer = await pages.get("/link.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=300"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "EmrtasksLink" in answer.text
    again = await pages.get("/link.js", headers={"if-none-match": answer.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    css = await pages.get("/link/static/link.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert (await pages.get("/link/static/..%2Fpages.py")).status_code == 404


async def test_an_oauth_callback_with_an_unknown_state_is_a_plain_400(pages):
    answer = await pages.get("/link/oauth/callback", params={"state": "forged", "code": "c"})
    assert answer.status_code == 400
    assert link.UNKNOWN_STATE in answer.text
    _assert_link_headers(answer, "'none'")


async def test_a_preselected_emr_without_the_deployments_app_is_explained_and_others_offered(pages, tenant):
    token = await _token(pages, tenant, emr_name="drchrono")
    answer = await pages.get("/link", params={"token": token})
    assert answer.status_code == 400
    assert "DrChrono (task): Not available here yet" in answer.text
    assert 'id="emr-drchrono" value="drchrono" aria-describedby="asks-drchrono" disabled' in answer.text
    assert 'value="sandbox"' in answer.text


async def test_a_csrf_token_works_only_for_its_own_link_session(pages, tenant):
    first, second = await _token(pages, tenant), await _token(pages, tenant)
    csrf_of_first = _csrf((await pages.get("/link", params={"token": first})).text)
    answer = await pages.post(
        "/link/credentials", data={"token": second, "csrf": csrf_of_first, "mode": "window", "emr": "sandbox"}
    )
    assert answer.status_code == 403
    _assert_link_headers(answer, "'none'")
