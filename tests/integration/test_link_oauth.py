"""Link with an OAuth EMR: DrChrono's consent (authorization code with PKCE, a fake authorization
server that checks the verifier) in front of DrChrono's vendor fake; the token answer becomes the
connection's credentials, checked for real before the public token is handed back."""

import dataclasses
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emrtasks.domain import errors
from emrtasks.service import audit, auth, link
from tests.contract import harness
from tests.contract.fakes import drchrono as fake_drchrono
from tests.oauth_fake import FakeAuthorizationServer, consent

APP = {
    "base_url": harness.BASE_URL,
    "client_id": fake_drchrono.CLIENT_ID,
    "client_secret": fake_drchrono.CLIENT_SECRET,
}
CLINIC = {"task_status_id": str(fake_drchrono.OPEN_STATUS)}


@pytest.fixture
async def drchrono(runtime):
    fake = fake_drchrono.FakeDrChrono()
    emr = harness.FakeTransport(fake)

    def tokens():
        fake.refresh_tokens.add("linked-refresh")
        return {"access_token": fake.issue_token(), "refresh_token": "linked-refresh", "expires_in": 172800}

    server = FakeAuthorizationServer(
        client_id=fake_drchrono.CLIENT_ID,
        client_secret=fake_drchrono.CLIENT_SECRET,
        tokens=tokens,
        fallback=emr.handle_async_request,
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    await link.set_app(
        runtime.ctx, "drchrono", {**APP, "oauth_authorize_url": f"{harness.BASE_URL}/o/authorize/"}
    )
    yield fake, server
    await http.aclose()


async def _token(runtime, tenant, **extra):
    client = await auth.authenticate_client(runtime.ctx, tenant.client_id, tenant.client_secret)
    return (
        await link.create_link_token(
            runtime.ctx, audit.as_client(client.id), client, {"user_id": "u", "org_id": "o", **extra}
        )
    )["token"]


async def test_drchrono_links_by_consent_and_its_tasks_work(api, runtime, tenant, drchrono):
    _fake, server = drchrono
    token = await _token(runtime, tenant, emr_name="drchrono")
    url = await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{harness.BASE_URL}/o/authorize/?")
    assert query["redirect_uri"] == "http://127.0.0.1:8000/link/oauth/callback"
    assert query["scope"] == "tasks:read tasks:write patients:read user:read"
    assert (query["client_id"], query["code_challenge_method"]) == (fake_drchrono.CLIENT_ID, "S256")
    back = consent(server, url)
    view, result = await link.finish_oauth(runtime.ctx, back["state"], back["code"], None)
    assert view.preselected_emr == "drchrono"
    assert result.ok, result.message
    assert server.token_forms[0]["code_verifier"]  # the exchange carried the PKCE verifier
    client = await auth.authenticate_client(runtime.ctx, tenant.client_id, tenant.client_secret)
    access_token = await link.exchange(runtime.ctx, audit.as_client(client.id), client, result.public_token)
    users = await api.get("/v1/users", headers=tenant.headers(access_token))
    assert users.status_code == 200
    assert {u["id"] for u in users.json()["users"]} >= {"201", "group:301"}


async def test_a_state_works_once_and_an_unknown_one_is_refused(runtime, tenant, drchrono):
    _fake, server = drchrono
    token = await _token(runtime, tenant)
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    with pytest.raises(errors.Problem) as unknown:
        await link.finish_oauth(runtime.ctx, "forged", back["code"], None)
    assert (unknown.value.error, unknown.value.message) == ("invalid_oauth_state", link.UNKNOWN_STATE)
    _view, result = await link.finish_oauth(runtime.ctx, back["state"], back["code"], None)
    assert result.ok
    with pytest.raises(errors.Problem) as replayed:
        await link.finish_oauth(runtime.ctx, back["state"], back["code"], None)
    assert replayed.value.message == link.UNKNOWN_STATE


async def test_a_refused_consent_can_be_tried_again(runtime, tenant, drchrono):
    _fake, server = drchrono
    token = await _token(runtime, tenant)
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    view, result = await link.finish_oauth(runtime.ctx, back["state"], None, "access_denied")
    assert (result.ok, result.message) == (
        False,
        "The EMR did not grant access (access_denied). You can try again.",
    )
    assert view.tries_left == 5
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    assert (await link.finish_oauth(runtime.ctx, back["state"], back["code"], None))[1].ok


async def test_a_code_refused_at_the_token_endpoint_is_shown_not_raised(runtime, tenant, drchrono):
    _fake, server = drchrono
    token = await _token(runtime, tenant)
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    server.codes.clear()  # the code expired at the EMR
    _view, result = await link.finish_oauth(runtime.ctx, back["state"], back["code"], None)
    assert not result.ok and "refused the authorization code" in result.message


async def test_oauth_needs_the_deployments_app_and_the_clinics_values(runtime, tenant, drchrono):
    token = await _token(runtime, tenant)
    with pytest.raises(errors.Problem) as missing:
        await link.start_oauth(runtime.ctx, token, "drchrono", None, {})
    assert "missing setting: task_status_id" in missing.value.message
    with pytest.raises(errors.Problem) as wrong_method:
        await link.submit_credentials(runtime.ctx, token, "drchrono", None, CLINIC)
    assert wrong_method.value.error == "oauth_required"
    with pytest.raises(errors.Problem) as not_oauth:
        await link.start_oauth(runtime.ctx, token, "sandbox", None, {})
    assert not_oauth.value.error == "credentials_required"


async def test_the_pkce_verifier_and_the_clinics_values_are_kept_encrypted(runtime, tenant, drchrono):
    from sqlalchemy import select

    from emrtasks.storage import db, tables

    token = await _token(runtime, tenant)
    url = await link.start_oauth(runtime.ctx, token, "drchrono", None, {"task_status_id": "501"})
    state = parse_qs(urlsplit(url).query)["state"][0]
    async with db.read(runtime.engine) as conn:
        row = (await conn.execute(select(tables.link_tokens))).mappings().one()
    assert state not in json.dumps(dict(row), default=str)
    assert row["oauth_session"].startswith("v2:") and "501" not in row["oauth_session"]


async def test_a_refresh_token_spent_by_the_check_is_replaced_by_the_new_one(runtime, tenant, drchrono):
    from emrtasks.storage import connections, db

    fake, server = drchrono

    def stale_access_token():
        fake.refresh_tokens.add("linked-refresh")
        return {"access_token": "not-accepted", "refresh_token": "linked-refresh"}

    server.tokens = stale_access_token  # the check must refresh, which DrChrono rotates
    token = await _token(runtime, tenant)
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    _view, result = await link.finish_oauth(runtime.ctx, back["state"], back["code"], None)
    assert result.ok, result.message
    assert "linked-refresh" not in fake.refresh_tokens  # spent by the check
    async with db.read(runtime.engine) as conn:
        [stored] = [
            c for c in await connections.list_connections(conn, tenant.client_id) if c.emr == "drchrono"
        ]
    refresh = runtime.ctx.adapters.config_of(stored)["refresh_token"]
    assert refresh != "linked-refresh" and refresh in fake.refresh_tokens


async def test_two_callbacks_with_one_state_at_once_link_once(
    runtime, tenant, drchrono, settings, monkeypatch
):
    import asyncio

    from emrtasks import bootstrap
    from emrtasks.storage import link as stored_link

    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one write transaction at a time: the two callbacks cannot interleave")
    _fake, server = drchrono
    token = await _token(runtime, tenant)
    back = consent(server, await link.start_oauth(runtime.ctx, token, "drchrono", None, CLINIC))
    both_read = asyncio.Barrier(2)
    read = stored_link.get_link_token_by_state

    async def read_then_wait(conn, state_hash):
        found = await read(conn, state_hash)
        await both_read.wait()  # each callback has read the session before either takes it
        return found

    monkeypatch.setattr(stored_link, "get_link_token_by_state", read_then_wait)
    async with bootstrap.runtime(settings, run_worker=False) as other:
        other.ctx.adapters.deps = runtime.ctx.adapters.deps
        found = await asyncio.gather(
            *(link.finish_oauth(ctx, back["state"], back["code"], None) for ctx in (runtime.ctx, other.ctx)),
            return_exceptions=True,
        )
    refused = [f for f in found if isinstance(f, errors.Problem)]
    assert len(refused) == 1 and refused[0].message == link.UNKNOWN_STATE
    assert [f[1].ok for f in found if not isinstance(f, BaseException)] == [True]
