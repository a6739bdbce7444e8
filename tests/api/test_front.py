"""The application's front (api/front.py): the hot routes, taken straight to their endpoints, answer
as the whole stack would: request id, `no-store`, the contract's error body for refusals and crashes,
and the route's label in the metrics."""

from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from emrtasks import bootstrap
from emrtasks.api import front
from emrtasks.api.app import create_app
from emrtasks.observability import metrics as observability_metrics
from emrtasks.observability import telemetry
from emrtasks.service import auth
from tests.api import helpers


def test_every_hot_route_is_taken_straight_to_its_endpoint(runtime: bootstrap.Runtime) -> None:
    app = create_app(runtime.ctx, bench_routes=True)
    assert {key for key in front.HOT_ROUTES if app.hot_route(*key) is not None} == front.HOT_ROUTES
    assert app.hot_route("GET", "/v1/tasks") is None  # another method: the router answers (405)


async def test_a_refusal_on_a_hot_route_has_the_contract_body_the_request_id_and_no_store(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.post("/v1/tasks", json={}, headers={"x-request-id": "req-front.1"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert answer.headers["x-request-id"] == "req-front.1"
    assert answer.headers["cache-control"] == "no-store"


async def test_a_crash_on_a_hot_route_is_the_contract_500(
    runtime: bootstrap.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(auth, "authenticate_client", crash)
    async with helpers.server_client(runtime) as client:
        answer = await client.post("/v1/tasks", json={})
    assert answer.status_code == 500
    assert answer.json() == {"success": False, "error": "internal_error", "message": "Internal server error."}
    assert answer.headers["x-request-id"]
    assert answer.headers["cache-control"] == "no-store"


async def test_the_wrong_method_on_a_hot_path_goes_through_the_router(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/tasks")
    assert answer.status_code == 405
    assert answer.headers["cache-control"] == "no-store"


async def test_hot_and_other_routes_are_counted_by_their_route(runtime: bootstrap.Runtime) -> None:
    metrics = observability_metrics.Metrics(runtime.engine, disable_after_seconds=1)
    observed = telemetry.Telemetry(metrics, None)
    app = create_app(runtime.ctx, telemetry=observed)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.post("/v1/tasks", json={})).status_code == 401
        assert (await client.get("/nowhere")).status_code == 404
    exposition = generate_latest(metrics.registry).decode()
    for route, status in (("/healthz", "200"), ("/v1/tasks", "401"), ("unmatched", "404")):
        assert f'route="{route}",status="{status}"' in exposition, route
