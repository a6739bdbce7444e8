"""`/v1/webhook`: registration and listing answer Cobalt's field names beside ours, and the documented
schemas describe every field the answers hold."""

import dataclasses

import pytest

from emrtasks.api import schemas

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _loopback_urls_allowed(runtime):
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)


async def _register(api, tenant, url=HOOK):
    answer = await api.post("/v1/webhook", json={"webhook_url": url}, headers=tenant.headers())
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_registration_answers_the_secret_as_webhook_secret_and_webhook_secret_key(api, tenant):
    body = await _register(api, tenant)
    assert body["webhook_secret"].startswith("whsec_")
    assert body["webhook_secret_key"] == body["webhook_secret"]
    assert (body["success"], body["message"]) == (True, "Webhook registered successfully")
    assert (body["webhook_url"], body["webhook_id"][:3]) == (HOOK, "wh_")
    assert set(body) == set(schemas.WebhookCreated.model_fields)


async def test_the_list_answers_cobalts_webhook_url_as_the_first_of_webhook_urls(api, tenant):
    first = await _register(api, tenant, "http://127.0.0.1:9/first")
    second = await _register(api, tenant, "http://127.0.0.1:9/second")
    body = (await api.get("/v1/webhook", headers=tenant.headers())).json()
    assert body["webhook_url"] == "http://127.0.0.1:9/first"
    assert [(w["id"], w["url"]) for w in body["webhook_urls"]] == [
        (first["webhook_id"], "http://127.0.0.1:9/first"),
        (second["webhook_id"], "http://127.0.0.1:9/second"),
    ]
    assert set(body) == set(schemas.WebhookList.model_fields)
    assert all(set(w) == set(schemas.WebhookOut.model_fields) for w in body["webhook_urls"])


async def test_the_list_names_no_secret(api, tenant):
    registered = await _register(api, tenant)
    answer = await api.get("/v1/webhook", headers=tenant.headers())
    assert registered["webhook_secret"] not in answer.text
    assert "secret" not in answer.text


async def test_with_no_url_registered_webhook_url_is_null_and_the_list_empty(api, tenant):
    body = (await api.get("/v1/webhook", headers=tenant.headers())).json()
    assert body == {"success": True, "webhook_url": None, "webhook_urls": []}


async def test_after_the_first_url_is_deleted_webhook_url_is_the_next_one(api, tenant):
    first = await _register(api, tenant, "http://127.0.0.1:9/first")
    await _register(api, tenant, "http://127.0.0.1:9/second")
    deleted = await api.delete(f"/v1/webhook/{first['webhook_id']}", headers=tenant.headers())
    assert deleted.status_code == 200
    body = (await api.get("/v1/webhook", headers=tenant.headers())).json()
    assert body["webhook_url"] == "http://127.0.0.1:9/second"
    assert [w["url"] for w in body["webhook_urls"]] == ["http://127.0.0.1:9/second"]
