"""The Link page's service (`service/link.py`): link sessions and their refusals, the real login check
against a credentials EMR's vendor fake (OpenEMR), tries, the catalogue and the deployment's apps,
the clients' allowed origins, and the `login_required` event once per break."""

import asyncio
import dataclasses
import json

import httpx
import pytest
from sqlalchemy import select

from emrtasks.domain import errors, outcomes
from emrtasks.service import admin, audit, auth, link
from emrtasks.storage import connections, db, tables
from emrtasks.webhooks import events
from tests.conftest import SUBJECT_TASK, drain, make_tenant
from tests.contract import harness
from tests.contract.cases.openemr import CASE as OPENEMR
from tests.contract.fakes import openemr as fake_openemr


async def _token(runtime, tenant, **extra):
    client = dataclasses.replace(await _client(runtime, tenant))
    body = {"user_id": "u1", "org_id": "o1", **extra}
    return (await link.create_link_token(runtime.ctx, audit.as_client(client.id), client, body))["token"]


async def _client(runtime, tenant):
    return await auth.authenticate_client(runtime.ctx, tenant.client_id, tenant.client_secret)


def _use_fake(runtime, fake):
    http = httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL)
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    return http


async def _problem(pending):
    with pytest.raises(errors.Problem) as caught:
        await pending
    return caught.value


# --- link sessions -------------------------------------------------------------------------------------


async def test_open_link_shows_the_session(runtime, tenant):
    await link.set_allowed_origins(runtime.ctx, tenant.client_id, ["https://app.example.com"])
    token = await _token(runtime, tenant, emr_name="openemr", emr_instance_domain="clinic.example.org")
    view = await link.open_link(runtime.ctx, token)
    assert (view.client_name, view.preselected_emr, view.instance_domain) == (
        "tests",
        "openemr",
        "clinic.example.org",
    )
    assert view.allowed_origins == ("https://app.example.com",)
    assert (view.update_mode, view.tries_left, view.callback_url) == (False, 5, None)


async def test_unknown_expired_and_used_link_tokens_each_say_so(runtime, tenant, clock):
    unknown = await _problem(link.open_link(runtime.ctx, "lt_nope"))
    assert (unknown.status, unknown.error, unknown.message) == (
        400,
        "invalid_link_token",
        link.UNKNOWN_LINK_TOKEN,
    )
    token = await _token(runtime, tenant)
    assert (await link.submit_credentials(runtime.ctx, token, "sandbox", None, {})).ok
    used = await _problem(link.open_link(runtime.ctx, token))
    assert (
        used.message
        == "This link token was already used: a link token works once. Ask the app for a new link."
    )
    again = await _problem(link.submit_credentials(runtime.ctx, token, "sandbox", None, {}))
    assert again.message == link.USED_LINK_TOKEN
    late = await _token(runtime, tenant)
    clock.advance(30 * 60 + 1)
    expired = await _problem(link.open_link(runtime.ctx, late))
    assert expired.message == (
        "This link token has expired (link tokens last 30 minutes). Ask the app for a new link."
    )
    assert len({unknown.message, used.message, expired.message}) == 3


async def test_the_sandbox_link_takes_a_rule_set_and_stores_the_directory(runtime, tenant):
    token = await _token(runtime, tenant, reference_id="ref-z")
    result = await link.submit_credentials(runtime.ctx, token, "sandbox", "phone_call", {"latency_ms": "0"})
    assert result.ok
    async with db.read(runtime.engine) as conn:
        found = [
            c for c in await connections.list_connections(conn, tenant.client_id) if c.reference_id == "ref-z"
        ]
        directory = await connections.get_directory(conn, found[0].id)
    assert (found[0].emr, found[0].rules, found[0].settings) == ("sandbox", "phone_call", {"latency_ms": 0.0})
    assert directory is not None
    assert len(directory.users) == 6 and len(directory.call_types) == 5


async def test_bad_values_are_400_naming_each_problem_and_spend_no_try(runtime, tenant):
    token = await _token(runtime, tenant)
    bad = await _problem(
        link.submit_credentials(runtime.ctx, token, "sandbox", None, {"latency_ms": "soon", "x": "1"})
    )
    assert (bad.status, bad.error) == (400, "invalid_settings")
    assert "unknown setting: x" in bad.message and "latency_ms must be a number" in bad.message
    unknown_rules = await _problem(link.submit_credentials(runtime.ctx, token, "sandbox", "nope", {}))
    assert unknown_rules.message.startswith("Unknown rules for sandbox: nope.")
    assert (await link.open_link(runtime.ctx, token)).tries_left == 5


# --- a credentials EMR, checked for real -----------------------------------------------------------------


def _openemr_values(password):
    values = {k: str(v) for k, v in OPENEMR.config(harness.BASE_URL).items()}
    return {**values, "password": password}


async def test_a_refused_password_then_the_right_one_links_openemr(api, runtime, tenant, caplog):
    fake = fake_openemr.FakeOpenEmr()
    http = _use_fake(runtime, fake)
    token = await _token(runtime, tenant, emr_name="openemr")
    refused = await link.submit_credentials(
        runtime.ctx, token, "openemr", None, _openemr_values("wrong-pass")
    )
    assert refused == link.LinkResult(ok=False, message="The EMR refused these credentials.", tries_left=4)
    assert (await link.open_link(runtime.ctx, token)).tries_left == 4
    accepted = await link.submit_credentials(
        runtime.ctx, token, "openemr", None, _openemr_values(fake_openemr.PASSWORD)
    )
    assert accepted.ok and accepted.public_token
    client = await _client(runtime, tenant)
    access_token = await link.exchange(runtime.ctx, audit.as_client(client.id), client, accepted.public_token)
    users = await api.get("/v1/users", headers=tenant.headers(access_token))
    assert users.status_code == 200 and users.json()["users"]
    async with db.read(runtime.engine) as conn:
        rows = (
            await conn.execute(select(tables.connections).where(tables.connections.c.emr == "openemr"))
        ).all()
    stored = json.dumps([dict(r._mapping) for r in rows], default=str)
    assert fake_openemr.PASSWORD not in stored and "wrong-pass" not in stored
    assert fake_openemr.PASSWORD not in caplog.text and "wrong-pass" not in caplog.text
    await http.aclose()


async def test_five_refusals_spend_the_link_token(runtime, tenant):
    http = _use_fake(runtime, fake_openemr.FakeOpenEmr())
    token = await _token(runtime, tenant)
    for left in (4, 3, 2, 1):
        result = await link.submit_credentials(runtime.ctx, token, "openemr", None, _openemr_values("nope"))
        assert (result.ok, result.tries_left) == (False, left)
    last = await _problem(
        link.submit_credentials(runtime.ctx, token, "openemr", None, _openemr_values("nope"))
    )
    assert last.message == "The EMR refused these credentials. " + link.SPENT_LINK_TOKEN
    spent = await _problem(link.open_link(runtime.ctx, token))
    assert spent.message == "This link has no tries left after 5 refused logins. Ask the app for a new link."
    right = _openemr_values(fake_openemr.PASSWORD)
    assert (await _problem(link.submit_credentials(runtime.ctx, token, "openemr", None, right))).message == (
        link.SPENT_LINK_TOKEN
    )
    await http.aclose()


async def test_an_emr_that_fails_otherwise_says_so_and_spends_no_try(runtime, tenant):
    fake = fake_openemr.FakeOpenEmr()
    http = _use_fake(runtime, fake)
    token = await _token(runtime, tenant)
    fake.fail_next(503, body=b"{}")
    fake.fail_next(503, body=b"{}")
    fake.fail_next(503, body=b"{}")
    result = await link.submit_credentials(
        runtime.ctx, token, "openemr", None, _openemr_values(fake_openemr.PASSWORD)
    )
    assert not result.ok
    assert result.message.startswith("The EMR could not be reached to check this login")
    assert result.message != link.REFUSED and result.tries_left == 5
    await http.aclose()


async def test_a_network_failure_is_not_a_crash(runtime, tenant):
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    token = await _token(runtime, tenant)
    result = await link.submit_credentials(runtime.ctx, token, "openemr", None, _openemr_values("x"))
    assert not result.ok and result.tries_left == 5
    await http.aclose()


# --- the catalogue, the deployment's apps, allowed origins ----------------------------------------------


async def test_the_catalogue_lists_the_sandbox_first_and_hides_deployment_settings(runtime):
    entries = {e.name: e for e in await link.catalogue(runtime.ctx)}
    first = (await link.catalogue(runtime.ctx))[0]
    assert first.name == "sandbox" and first.available and first.method == "credentials"
    assert {"subject_assignee", "phone_call", "drchrono"} <= set(first.rule_sets)
    drchrono = entries["drchrono"]
    assert (drchrono.method, drchrono.available) == ("oauth", False)
    assert "emrtasks apps set --emr drchrono" in drchrono.unavailable_reason
    assert [f.name for f in drchrono.fields] == ["task_status_id", "default_category_id"]
    assert entries["openemr"].available and entries["openemr"].method == "credentials"
    assert {f.name for f in entries["openemr"].fields if f.secret} == {"client_secret", "password"}
    assert entries["athenahealth"].method == "credentials"  # OAuth only where configured
    from emrtasks import emr

    for name, entry in entries.items():
        held = {s.name for s in emr.module_for(name).SETTINGS if s.held_by != "clinic"}
        assert not {f.name for f in entry.fields} & held, name
    assert {"refresh_token", "access_token", "client_secret"} & {f.name for f in drchrono.fields} == set()


async def test_an_app_config_makes_its_emr_available_and_is_listed_without_secrets(runtime):
    await link.set_app(runtime.ctx, "drchrono", {"client_id": "abc", "client_secret": "s3cret-value"})
    drchrono = {e.name: e for e in await link.catalogue(runtime.ctx)}["drchrono"]
    assert drchrono.available
    listed = await link.list_apps(runtime.ctx)
    assert listed[0]["emr"] == "drchrono"
    assert listed[0]["config"] == {"client_id": "abc", "client_secret": "(set)"}
    async with db.read(runtime.engine) as conn:
        raw = (await conn.execute(select(tables.deployment_apps.c.config))).scalar()
    assert "s3cret-value" not in raw and raw.startswith("v2:")
    await link.set_app(runtime.ctx, "athenahealth", {"client_id": "a", "client_secret": "b", "oauth": True})
    athena = {e.name: e for e in await link.catalogue(runtime.ctx)}["athenahealth"]
    assert athena.method == "oauth"


async def test_an_app_config_takes_only_deployment_settings(runtime):
    bad = await _problem(link.set_app(runtime.ctx, "drchrono", {"client_id": 5, "task_status_id": 1}))
    assert (
        "unknown app setting: task_status_id" in bad.message and "client_id must be a string" in bad.message
    )


async def test_allowed_origins_are_checked_normalised_and_replaced(runtime, tenant):
    found = await link.set_allowed_origins(
        runtime.ctx,
        tenant.client_id,
        ["https://App.Example.com:443", "http://localhost:5000", "https://b.example"],
    )
    assert found == ("http://localhost:5000", "https://app.example.com", "https://b.example")
    assert await link.set_allowed_origins(runtime.ctx, tenant.client_id, []) == ()
    for bad in (
        "http://app.example.com",
        "https://app.example.com/path",
        "app.example.com",
        "https://u:p@a.example",
    ):
        problem = await _problem(link.set_allowed_origins(runtime.ctx, tenant.client_id, [bad]))
        assert problem.error == "invalid_origin"
    missing = await _problem(link.set_allowed_origins(runtime.ctx, "ci_nope", ["https://a.example"]))
    assert missing.status == 404


# --- login_required: one event per break ----------------------------------------------------------------


async def _login_events(runtime):
    async with db.read(runtime.engine) as conn:
        query = select(tables.events).where(tables.events.c.type == events.LOGIN_REQUIRED)
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def test_a_break_sends_one_login_required_event_to_the_log_and_the_webhooks(api, runtime, tenant):
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)
    hook = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=tenant.headers()
    )
    assert hook.status_code == 201
    async with db.read(runtime.engine) as conn:
        connection = await connections.get_connection(conn, tenant.connection_a)
    await admin.mark_login_required(runtime.ctx, connection)
    await admin.mark_login_required(runtime.ctx, connection)  # noticed again: no second event
    found = await _login_events(runtime)
    assert len(found) == 1
    body = json.loads(found[0]["body"])
    assert body["type"] == "login_required" and body["object"] == "event" and body["job_id"] is None
    assert body["access_token_reference_id"] == "ref-a"
    assert body["data"]["connection_id"] == tenant.connection_a
    assert body["data"]["access_token_reference_id"] == "ref-a"
    async with db.read(runtime.engine) as conn:
        deliveries = (await conn.execute(select(tables.deliveries.c.event_id))).scalars().all()
    assert deliveries == [found[0]["id"]]
    polled = await api.get(
        "/v1/webhook-events", params={"event_type": "login_required"}, headers=tenant.headers()
    )
    assert [e["id"] for e in polled.json()["webhook_events"]] == [found[0]["id"]]


async def test_two_processes_noticing_at_once_send_one_event(runtime, tenant, settings):
    from emrtasks import bootstrap

    async with bootstrap.runtime(settings, run_worker=False) as other:
        async with db.read(runtime.engine) as conn:
            connection = await connections.get_connection(conn, tenant.connection_a)
        await asyncio.gather(
            *(
                admin.mark_login_required(ctx, connection)
                for ctx in (runtime.ctx, other.ctx, runtime.ctx, other.ctx)
            )
        )
    assert len(await _login_events(runtime)) == 1


async def test_failing_tasks_of_a_broken_login_send_one_event_and_a_repair_allows_the_next(
    api, runtime, tenant
):
    async def refused(*_args, **_kwargs):
        raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, "refused"))

    for _ in range(3):
        assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
    adapter = runtime.ctx.adapters.for_connection(
        await admin.update_connection(runtime.ctx, tenant.connection_a, settings=None, reference_id=None)
    )
    original = type(adapter._inner).search_patients
    type(adapter._inner).search_patients = refused
    try:
        await drain(runtime)
    finally:
        type(adapter._inner).search_patients = original
    assert len(await _login_events(runtime)) == 1
    token = await _token(runtime, tenant, access_token=tenant.token_a)
    assert (await link.submit_credentials(runtime.ctx, token, "sandbox", None, {})).ok
    async with db.read(runtime.engine) as conn:
        connection = await connections.get_connection(conn, tenant.connection_a)
    assert connection.status == "active"
    await admin.mark_login_required(runtime.ctx, connection)  # a new break: a new event
    assert len(await _login_events(runtime)) == 2


async def test_a_link_in_update_mode_keeps_the_connections_limits(runtime, tenant):
    other = await make_tenant(runtime, "limits", max_concurrency=3)
    token = await _token(runtime, other, access_token=other.token_a)
    assert (await link.submit_credentials(runtime.ctx, token, "sandbox", None, {})).ok
    async with db.read(runtime.engine) as conn:
        connection = await connections.get_connection(conn, other.connection_a)
    assert connection.settings.get("max_concurrency") == 3


async def test_two_exchanges_of_one_public_token_at_once_answer_once(runtime, tenant, settings, monkeypatch):
    from emrtasks import bootstrap
    from emrtasks.storage import link as stored_link

    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one write transaction at a time: the two exchanges cannot interleave")
    token = await _token(runtime, tenant)
    public_token = (await link.submit_credentials(runtime.ctx, token, "sandbox", None, {})).public_token
    both_read = asyncio.Barrier(2)
    read = stored_link.get_public_token

    async def read_then_wait(conn, token_hash):
        found = await read(conn, token_hash)
        await both_read.wait()  # each exchange has read the token before either spends it
        return found

    monkeypatch.setattr(stored_link, "get_public_token", read_then_wait)
    client = await _client(runtime, tenant)
    async with bootstrap.runtime(settings, run_worker=False) as other:
        found = await asyncio.gather(
            *(
                link.exchange(ctx, audit.as_client(client.id), client, public_token)
                for ctx in (runtime.ctx, other.ctx)
            ),
            return_exceptions=True,
        )
    assert len([f for f in found if isinstance(f, str) and f.startswith("at_")]) == 1
    assert [f.message for f in found if isinstance(f, errors.Problem)] == [link.USED_PUBLIC_TOKEN]
