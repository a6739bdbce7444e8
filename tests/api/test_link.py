"""Link's JSON API: `POST /v1/link/token/create` and `GET /v1/link/token/exchange` (Cobalt-compatible),
with the Link page's part played by the service (`service/link.py`) as the page would call it."""

import dataclasses

import pytest

from emrtasks.service import admin, link
from tests.api.helpers import LOGIN_REQUIRED_BODY, WRONG_SECRET, expire_login, missing, unauthorized
from tests.conftest import SUBJECT_TASK, drain, make_tenant

CREATE = "/v1/link/token/create"
EXCHANGE = "/v1/link/token/exchange"
BODY = {"user_id": "user-42", "org_id": "org-7"}


async def _link_token(api, headers, **extra):
    answer = await api.post(CREATE, json={**BODY, **extra}, headers=headers)
    assert answer.status_code == 200, answer.json()
    return answer.json()


async def _sandbox_public_token(runtime, token, rules=None):
    result = await link.submit_credentials(runtime.ctx, token, "sandbox", rules, {})
    assert result.ok, result.message
    return result


async def test_a_sandbox_link_gives_an_access_token_whose_tasks_are_created(api, runtime, tenant):
    created = await _link_token(api, tenant.headers(), reference_id="clinic-9")
    assert created["success"] is True
    assert created["token"].startswith("lt_")
    assert created["link_url"] == f"http://127.0.0.1:8000/link?token={created['token']}"
    result = await _sandbox_public_token(runtime, created["token"])
    assert result.public_token.startswith("pt_") and result.redirect_url is None
    exchanged = await api.get(
        EXCHANGE, params={"public_token": result.public_token}, headers=tenant.headers()
    )
    assert exchanged.status_code == 200
    access_token = exchanged.json()["token"]
    assert exchanged.json() == {"success": True, "token": access_token}
    assert access_token.startswith("at_")
    headers = tenant.headers(access_token)
    settings = (await api.get("/v1/settings", headers=headers)).json()["data"]
    assert (settings["emr"], settings["access_token_reference_id"]) == ("sandbox", "clinic-9")
    accepted = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert accepted.status_code == 202
    await drain(runtime)
    task = (await api.get(f"/v1/tasks/{accepted.json()['task_id']}", headers=headers)).json()["task"]
    assert task["status"] == "created"


async def test_the_link_url_starts_with_the_public_url(api, runtime, tenant):
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, public_url="https://tasks.example.com")
    created = await _link_token(api, tenant.headers())
    assert created["link_url"].startswith("https://tasks.example.com/link?token=lt_")


async def test_creating_a_link_token_needs_client_credentials(api, tenant):
    answer = await api.post(CREATE, json=BODY, headers={"client_id": tenant.client_id, "client_secret": "x"})
    wrong_secret = unauthorized("Invalid client credentials.", WRONG_SECRET)
    assert (answer.status_code, answer.json()) == (401, wrong_secret)
    answer = await api.get(EXCHANGE, params={"public_token": "pt_x"})
    no_headers = unauthorized("Invalid client credentials.", missing("client_id"), missing("client_secret"))
    assert (answer.status_code, answer.json()) == (401, no_headers)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"org_id": "o"}, "Missing required field: user_id"),
        ({"user_id": "u"}, "Missing required field: org_id"),
        ({"user_id": " ", "org_id": "o"}, "Missing required field: user_id"),
        ({**BODY, "user_id": 5}, "Invalid field: user_id must be a string."),
        ({**BODY, "org_id": "x" * 256}, "Invalid field: org_id must be at most 255 characters."),
        ({**BODY, "colour": "red"}, "Unexpected fields in request body: colour"),
        ({**BODY, "emr_name": "nope"}, None),
        ({**BODY, "callback_url": "http://app.example.com/done"}, None),
        ({**BODY, "callback_url": "ftp://app.example.com/done"}, None),
        ({**BODY, "callback_url": "https://evil.example.com/done"}, None),
        (
            {**BODY, "access_token": "at_unknown"},
            "Invalid field: access_token is not a connection of this client.",
        ),
    ],
)
async def test_a_bad_link_token_request_is_400_naming_the_problem(api, tenant, body, message):
    answer = await api.post(CREATE, json=body, headers=tenant.headers())
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    if message is not None:
        assert answer.json()["message"] == message


async def test_an_unknown_emr_and_a_foreign_callback_say_so(api, runtime, tenant):
    await link.set_allowed_origins(runtime.ctx, tenant.client_id, ["https://app.example.com"])
    answer = await api.post(CREATE, json={**BODY, "emr_name": "nope"}, headers=tenant.headers())
    assert answer.json()["message"].startswith("Unknown EMR: nope.")
    answer = await api.post(
        CREATE, json={**BODY, "callback_url": "https://evil.example.com/x"}, headers=tenant.headers()
    )
    assert answer.json()["message"].startswith(
        "Invalid field: callback_url's origin https://evil.example.com is not one of this client's "
        "allowed origins"
    )
    answer = await api.post(
        CREATE, json={**BODY, "callback_url": "http://app.example.com/x"}, headers=tenant.headers()
    )
    assert "must be https (http only on 127.0.0.1, ::1 or localhost)" in answer.json()["message"]


async def test_the_callback_gets_the_public_token(api, runtime, tenant):
    await link.set_allowed_origins(
        runtime.ctx, tenant.client_id, ["https://app.example.com", "http://127.0.0.1:5000"]
    )
    created = await _link_token(api, tenant.headers(), callback_url="https://app.example.com/linked?step=2")
    result = await _sandbox_public_token(runtime, created["token"])
    assert result.redirect_url == f"https://app.example.com/linked?step=2&token={result.public_token}"
    created = await _link_token(api, tenant.headers(), callback_url="http://127.0.0.1:5000/cb")
    result = await _sandbox_public_token(runtime, created["token"])
    assert result.redirect_url == f"http://127.0.0.1:5000/cb?token={result.public_token}"


async def test_another_clients_access_token_cannot_start_update_mode(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    answer = await api.post(CREATE, json={**BODY, "access_token": other.token_a}, headers=tenant.headers())
    assert answer.status_code == 400
    assert answer.json()["message"] == "Invalid field: access_token is not a connection of this client."


async def test_a_public_token_works_once_for_its_client_only(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    created = await _link_token(api, tenant.headers())
    result = await _sandbox_public_token(runtime, created["token"])
    params = {"public_token": result.public_token}
    foreign = await api.get(EXCHANGE, params=params, headers=other.headers())
    assert (foreign.status_code, foreign.json()) == (401, unauthorized(link.FOREIGN_PUBLIC_TOKEN))
    first = await api.get(EXCHANGE, params=params, headers=tenant.headers())
    assert first.status_code == 200  # the foreign attempt did not spend it
    again = await api.get(EXCHANGE, params=params, headers=tenant.headers())
    assert (again.status_code, again.json()["error"], again.json()["message"]) == (
        400,
        "invalid_public_token",
        "This public token was already exchanged: a public token works once.",
    )


async def test_an_expired_unknown_or_missing_public_token_is_400(api, runtime, tenant, clock):
    created = await _link_token(api, tenant.headers())
    result = await _sandbox_public_token(runtime, created["token"])
    clock.advance(601)
    expired = await api.get(EXCHANGE, params={"public_token": result.public_token}, headers=tenant.headers())
    assert (expired.status_code, expired.json()["message"]) == (
        400,
        "This public token has expired (public tokens last 10 minutes). Run Link again.",
    )
    unknown = await api.get(EXCHANGE, params={"public_token": "pt_nope"}, headers=tenant.headers())
    assert (unknown.status_code, unknown.json()["message"]) == (400, "Unknown public token.")
    missing = await api.get(EXCHANGE, headers=tenant.headers())
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "Missing required parameter: public_token",
    )


async def test_the_exchanged_access_token_is_no_longer_held(api, runtime, tenant):
    from sqlalchemy import select

    from emrtasks.storage import db, tables

    created = await _link_token(api, tenant.headers())
    result = await _sandbox_public_token(runtime, created["token"])
    async with db.read(runtime.engine) as conn:
        held = (await conn.execute(select(tables.public_tokens.c.access_token))).scalar()
    assert held.startswith("v2:")  # encrypted until the exchange
    await api.get(EXCHANGE, params={"public_token": result.public_token}, headers=tenant.headers())
    async with db.read(runtime.engine) as conn:
        row = (await conn.execute(select(tables.public_tokens))).mappings().one()
    assert row["access_token"] is None and row["used_at"] is not None
    assert result.public_token not in str(dict(row))


async def test_update_mode_brings_a_broken_connection_back_with_its_own_access_token(api, runtime, tenant):
    # Trust cached credentials for a while, as production does: the repair must still work at once.
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, auth_cache_seconds=60)
    await expire_login(runtime, tenant.connection_a)
    broken = await api.get("/v1/users", headers=tenant.a)
    assert (broken.status_code, broken.json()) == (403, LOGIN_REQUIRED_BODY)
    created = await _link_token(api, tenant.headers(), access_token=tenant.token_a)
    view = await link.open_link(runtime.ctx, created["token"])
    assert view.update_mode and view.preselected_emr == "sandbox"
    result = await _sandbox_public_token(runtime, created["token"])
    exchanged = await api.get(
        EXCHANGE, params={"public_token": result.public_token}, headers=tenant.headers()
    )
    assert exchanged.json() == {"success": True, "token": tenant.token_a}
    assert (await api.get("/v1/users", headers=tenant.a)).status_code == 200
    listed = await admin.list_connections(runtime.ctx, tenant.client_id)
    assert len(listed) == 2  # the same connection, repaired; none added
    assert {c["status"] for c in listed} == {"active"}


async def test_update_mode_keeps_the_connections_emr(api, runtime, tenant):
    answer = await api.post(
        CREATE,
        json={**BODY, "access_token": tenant.token_a, "emr_name": "drchrono"},
        headers=tenant.headers(),
    )
    assert (answer.status_code, answer.json()["message"]) == (
        400,
        "Invalid field: emr_name must be sandbox in update mode.",
    )
