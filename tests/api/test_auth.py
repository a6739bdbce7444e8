"""Authentication: client credentials, access tokens, tenancy of tokens, and the login_required refusal."""

import pytest

from tests.api.helpers import (
    INVALID_CLIENT,
    INVALID_TOKEN,
    LOGIN_REQUIRED_BODY,
    NOTHING_STORED,
    UNKNOWN_CLIENT,
    WRONG_SECRET,
    WRONG_TOKEN,
    expire_login,
    missing,
    stored_counts,
    unauthorized,
)
from tests.conftest import SUBJECT_TASK, make_tenant

# Every route that acts for one connection: (method, path, JSON body).
CONNECTION_ROUTES = [
    ("POST", "/v1/tasks", SUBJECT_TASK),
    ("GET", "/v1/tasks/requirements", None),
    ("GET", "/v1/tasks/task_01abc", None),
    ("GET", "/v1/jobs/job_01abc", None),
    ("GET", "/v1/users", None),
    ("GET", "/v1/phone-call-types", None),
    ("GET", "/v1/patients?mrn=MRN-1001", None),
    ("GET", "/v1/settings", None),
    ("POST", "/v1/settings", {"access_token_reference_id": "changed"}),
    ("GET", "/v1/sandbox/emr-tasks", None),
]
# Plus the one route that works with client credentials alone.
ALL_ROUTES = [*CONNECTION_ROUTES, ("GET", "/v1/webhook-events", None)]


def _ids(routes):
    return [f"{method} {path}" for method, path, _ in routes]


async def _call(api, method, path, body, headers):
    return await api.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_no_headers_at_all_is_401_invalid_client_credentials(api, tenant, method, path, body):
    answer = await _call(api, method, path, body, {})
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, missing("client_id"), missing("client_secret"))
    assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_wrong_client_secret_is_401_invalid_client_credentials(api, tenant, method, path, body):
    headers = {**tenant.a, "client_secret": tenant.client_secret + "x"}
    answer = await _call(api, method, path, body, headers)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, WRONG_SECRET)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"client_id": "ci_doesnotexist"}, UNKNOWN_CLIENT),
        ({"client_id": ""}, missing("client_id")),
        ({"client_secret": ""}, missing("client_secret")),
    ],
    ids=["unknown client_id", "empty client_id", "empty client_secret"],
)
async def test_unknown_or_empty_client_credentials_are_401_naming_the_header(api, tenant, change, named):
    answer = await api.get("/v1/settings", headers={**tenant.a, **change})
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, named)


@pytest.mark.parametrize("missing_header", ["client_id", "client_secret"])
async def test_a_missing_client_header_is_401_even_with_a_valid_access_token(api, tenant, missing_header):
    headers = {k: v for k, v in tenant.a.items() if k != missing_header}
    answer = await api.get("/v1/settings", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, missing(missing_header))


async def test_another_clients_secret_does_not_open_this_client(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    headers = {**tenant.a, "client_secret": other.client_secret}
    answer = await api.get("/v1/settings", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, WRONG_SECRET)


@pytest.mark.parametrize(("method", "path", "body"), CONNECTION_ROUTES, ids=_ids(CONNECTION_ROUTES))
async def test_missing_access_token_is_401_invalid_access_token(api, tenant, method, path, body):
    answer = await _call(api, method, path, body, tenant.headers())
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, missing("access_token"))


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_unknown_access_token_is_401_invalid_access_token(api, tenant, method, path, body):
    answer = await _call(api, method, path, body, tenant.headers("at_not-a-real-token"))
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_another_clients_access_token_is_401_invalid_access_token(
    api, runtime, tenant, method, path, body
):
    other = await make_tenant(runtime, "other")
    answer = await _call(api, method, path, body, tenant.headers(other.token_a))
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)


async def test_an_empty_access_token_on_a_connection_route_is_401(api, tenant):
    answer = await api.get("/v1/settings", headers=tenant.headers(""))
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, missing("access_token"))


async def test_client_credentials_are_checked_before_the_access_token(api, tenant):
    headers = {**tenant.headers("at_not-a-real-token"), "client_secret": "wrong"}
    answer = await api.get("/v1/settings", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, WRONG_SECRET)


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_valid_credentials_pass_authentication(api, tenant, method, path, body):
    answer = await _call(api, method, path, body, tenant.a)
    assert answer.status_code not in (401, 403), answer.text


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
async def test_a_login_required_connection_is_403_with_the_cobalt_body(
    api, runtime, tenant, method, path, body
):
    await expire_login(runtime, tenant.connection_a)
    answer = await _call(api, method, path, body, tenant.a)
    assert answer.status_code == 403
    assert answer.json() == LOGIN_REQUIRED_BODY


async def test_a_login_required_connection_accepts_no_task(api, runtime, tenant):
    await expire_login(runtime, tenant.connection_a)
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    assert answer.status_code == 403
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_login_required_on_one_connection_leaves_the_other_working(api, runtime, tenant):
    await expire_login(runtime, tenant.connection_a)
    answer = await api.get("/v1/settings", headers=tenant.b)
    assert answer.status_code == 200
    assert answer.json()["data"]["access_token_reference_id"] == "ref-b"
    assert answer.json()["data"]["status"] == "active"


async def test_bad_client_credentials_win_over_login_required(api, runtime, tenant):
    await expire_login(runtime, tenant.connection_a)
    answer = await api.get("/v1/settings", headers={**tenant.a, "client_secret": "wrong"})
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, WRONG_SECRET)


async def test_another_clients_login_required_token_is_401_not_403(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    await expire_login(runtime, other.connection_a)
    answer = await api.get("/v1/settings", headers=tenant.headers(other.token_a))
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"client_id": "ci_nobody", "client_secret": "cs_nothing"},
    ],
    ids=["no credentials", "unknown client"],
)
async def test_an_unauthenticated_create_task_stores_nothing(api, runtime, tenant, headers):
    headers = {**headers, "access_token": tenant.token_a}
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert answer.status_code == 401
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_an_invalid_token_create_task_stores_nothing(api, runtime, tenant):
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.headers("at_wrong"))
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)
    assert await stored_counts(runtime) == NOTHING_STORED
