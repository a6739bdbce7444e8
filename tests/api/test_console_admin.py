"""The console's connection, client and webhook endpoint pages: what they list, and each admin action
through the service the CLI and API use, with its audit row; refused for viewers."""

import dataclasses
import re

import pytest

from emrtasks.service import operators
from tests.api.console_helpers import audit_rows, browser, console_app, csrf_of, make_operator, sign_in


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


async def _post(client, page_url, action, **fields):
    page = await client.get(page_url)
    return await client.post(action, data={"csrf": csrf_of(page.text), **fields})


async def test_connections_list_status_and_directory_sync_and_sync_now_fetches_it(admin, runtime, tenant):
    page = await admin.get("/console/connections")
    assert tenant.connection_a in page.text and "sandbox (subject_assignee)" in page.text
    answer = await _post(admin, "/console/connections", f"/console/connections/{tenant.connection_a}/sync")
    assert answer.headers["location"] == "/console/connections?done=synced"
    synced = await admin.get(answer.headers["location"])
    row = re.search(rf"{tenant.connection_a}.*?</tr>", synced.text, re.S).group(0)
    assert "UTC" in row  # its directory's fetch time, where there was a dash
    [audited] = await audit_rows(runtime, "connection.sync")
    assert audited["targets"] == {"connection_id": tenant.connection_a}


async def test_disabling_a_connection_refuses_its_access_token_until_enabled(admin, runtime, tenant):
    answer = await _post(admin, "/console/connections", f"/console/connections/{tenant.connection_a}/disable")
    assert answer.status_code == 303
    assert (await admin.get("/v1/tasks/requirements", headers=tenant.a)).status_code == 401
    await _post(admin, "/console/connections", f"/console/connections/{tenant.connection_a}/enable")
    assert (await admin.get("/v1/tasks/requirements", headers=tenant.a)).status_code == 200
    rows = await audit_rows(runtime, "connection.disable") + await audit_rows(runtime, "connection.enable")
    assert all(r["actor_id"].startswith("operator:op_") for r in rows) and len(rows) == 2


async def test_a_new_client_and_a_rotated_secret_are_shown_once_and_work(admin, runtime):
    created = await _post(admin, "/console/clients", "/console/clients", name="Scribe One")
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    client_id = re.search(r"<code>(ci_\w+)</code>", created.text).group(1)
    secret = re.search(r'value="(cs_[\w-]+)" readonly', created.text).group(1)
    headers = {"client_id": client_id, "client_secret": secret}
    assert (await admin.get("/v1/webhook", headers=headers)).status_code == 200
    rotated = await _post(admin, "/console/clients", f"/console/clients/{client_id}/rotate-secret")
    new_secret = re.search(r'value="(cs_[\w-]+)" readonly', rotated.text).group(1)
    assert (await admin.get("/v1/webhook", headers=headers)).status_code == 401
    assert (
        await admin.get("/v1/webhook", headers={**headers, "client_secret": new_secret})
    ).status_code == 200
    assert secret not in (await admin.get("/console/clients")).text
    assert [r["targets"]["client_id"] for r in await audit_rows(runtime, "client.create")] == [client_id]
    assert len(await audit_rows(runtime, "client.rotate_secret")) == 1


async def test_an_endpoint_is_listed_enabled_and_its_secret_rotated(admin, runtime, tenant):
    registered = await admin.post(
        "/v1/webhook", headers=tenant.headers(), json={"webhook_url": "http://127.0.0.1:9/h"}
    )
    endpoint_id = registered.json()["webhook_id"]
    page = await admin.get("/console/endpoints")
    assert endpoint_id in page.text and "http://127.0.0.1:9/h" in page.text
    assert "whsec_" not in page.text
    rotated = await _post(admin, "/console/endpoints", f"/console/endpoints/{endpoint_id}/rotate-secret")
    assert rotated.status_code == 200 and re.search(r'value="whsec_[^"]+" readonly', rotated.text)
    enabled = await _post(admin, "/console/endpoints", f"/console/endpoints/{endpoint_id}/enable")
    assert enabled.headers["location"] == "/console/endpoints?done=enabled"
    assert len(await audit_rows(runtime, "webhook.rotate_secret")) == 1
    assert len(await audit_rows(runtime, "webhook.enable")) == 1


async def test_a_viewer_sees_the_lists_without_actions_and_cannot_post_them(app, runtime, tenant):
    await make_operator(runtime, "viewer@example.com", operators.VIEWER)
    async with browser(app) as viewer:
        await sign_in(viewer, "viewer@example.com")
        page = await viewer.get("/console/connections")
        assert tenant.connection_a in page.text and "Sync now" not in page.text
        answer = await viewer.post(
            f"/console/connections/{tenant.connection_a}/disable", data={"csrf": csrf_of(page.text)}
        )
        assert answer.status_code == 403
        assert (await viewer.get("/v1/tasks/requirements", headers=tenant.a)).status_code == 200
    [row] = await audit_rows(runtime, "connection.disable")
    assert row["outcome"] == "denied"


async def test_an_unknown_id_in_an_action_is_404(admin):
    answer = await _post(admin, "/console/clients", "/console/clients/ci_01nothere/disable")
    assert answer.status_code == 404 and "Client not found." in answer.text
