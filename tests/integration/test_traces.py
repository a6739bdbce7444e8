"""Traces in one process, exported over real OTLP/HTTP to a receiver on loopback: the EMR client's
HTTP spans (method, host, port, status; never a path or query), and an accepted task's spans."""

import time

import httpx
import pytest

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.observability import traces
from tests.conftest import SUBJECT_TASK, make_tenant
from tests.integration.test_metrics import run_due_jobs
from tests.otlp_receiver import OtlpReceiver

SERVER, CLIENT, CONSUMER = 2, 3, 5  # OTLP's SpanKind numbers


@pytest.fixture
def receiver():
    with OtlpReceiver() as found:
        yield found


def wait_for_spans(receiver: OtlpReceiver, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(receiver.spans) < count and time.monotonic() < deadline:
        time.sleep(0.02)


async def test_each_emr_http_request_is_a_client_span_naming_no_path_or_query(receiver):
    tracing = traces.Tracing(receiver.endpoint)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if "fail" in request.url.path else 200, json={})

    transport = traces.TracedTransport(httpx.MockTransport(answer), tracing)
    async with httpx.AsyncClient(transport=transport) as http:
        with tracing.span("emr search_patients"):
            await http.get("https://emr.example:8443/patients/MRN-1001?mrn=MRN-1001")
            await http.post("https://emr.example/fail", json={"note": "Review recent lab results."})
    tracing.shutdown()
    wait_for_spans(receiver, 3)
    get, post, parent = receiver.spans
    assert (get.name, get.kind) == ("GET", CLIENT)
    assert get.attributes == {
        "http.request.method": "GET",
        "server.address": "emr.example",
        "server.port": 8443,
        "http.response.status_code": 200,
    }
    assert post.attributes["server.port"] == 443 and post.attributes["http.response.status_code"] == 500
    assert get.parent_span_id == post.parent_span_id == parent.span_id
    assert "MRN-1001" not in repr(receiver.spans) and "lab results" not in repr(receiver.spans)


async def test_an_accepted_task_and_its_job_attempt_share_one_trace(settings: Settings, receiver):
    traced = settings.model_copy(update={"otlp_endpoint": receiver.endpoint})
    async with bootstrap.runtime(traced, run_worker=False, observe=True) as rt:
        tenant = await make_tenant(rt)
        app = create_app(rt.ctx, telemetry=rt.telemetry)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            answer = await api.post(
                "/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "traceparent": caller}
            )
            assert answer.status_code == 202
        await run_due_jobs(rt)  # in this process, without the worker's wrapping: the EMR spans only
    wait_for_spans(receiver, 3)
    by_name = {span.name: span for span in receiver.spans}
    server = by_name["POST /v1/tasks"]
    assert server.kind == SERVER and server.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent_span_id == "b7ad6b7169203331"  # the caller's span
    assert server.attributes["http.route"] == "/v1/tasks"
    assert server.attributes["http.response.status_code"] == 202
    assert server.attributes["request.id"] == answer.headers["x-request-id"]
    assert by_name["emr create_task"].attributes["emr.outcome"] == "created"
    assert "MRN-1001" not in repr(receiver.spans)
