"""How answers become results and exceptions, against httpx.MockTransport: error statuses to the
exception tree, polling to a final status or `Timeout` (on a fake clock), and pages followed to the end."""

import httpx
import pytest

import emrtasks_client as sdk

ERROR = {
    "success": False,
    "error": "missing_field",
    "message": "Missing required field: subject",
    "errors": [
        {"field": "subject", "code": "missing_field", "message": "Missing required field: subject"},
        {"field": "assignee_user_id", "code": "user_not_found", "message": "User not found."},
    ],
}
TASK = {
    "task_id": "task_1",
    "job_id": "job_1",
    "status": "processing",
    "subject": "Call",
    "description": "Review labs",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1",
    "phone_call_type_id": None,
    "notify_list": [],
    "emr_task_id": None,
    "failure_reason": None,
    "reasons": [],
    "created": "2026-11-30T11:50:27.342Z",
    "updated": "2026-11-30T11:50:27.362Z",
}


def _client(handler, **options) -> sdk.Client:
    return sdk.Client(
        "http://emrtasks.test", "ci_1", "cs_1", "at_1", transport=httpx.MockTransport(handler), **options
    )


def _answer(status: int, body: object, headers: dict[str, str] | None = None):
    return lambda request: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, "missing_field", sdk.ValidationError),
        (401, "unauthorized", sdk.AuthenticationError),
        (403, "login_required", sdk.LoginRequiredError),
        (404, "not_found", sdk.NotFoundError),
        (409, "webhook_exists", sdk.ConflictError),
        (413, "payload_too_large", sdk.ApiError),
        (422, "idempotency_key_reused", sdk.ValidationError),
        (502, "emr_error", sdk.ApiError),
    ],
)
def test_each_error_status_raises_its_exception_with_the_body(status, error, kind):
    body = {**ERROR, "error": error}
    with (
        _client(_answer(status, body, {"x-request-id": "req-7"}), retry=sdk.RetryPolicy(max_attempts=1)) as c,
        pytest.raises(kind) as raised,
    ):
        c.get_task("task_1")
    assert type(raised.value) is kind
    assert (raised.value.status_code, raised.value.error) == (status, error)
    assert raised.value.message == "Missing required field: subject"
    assert raised.value.request_id == "req-7"
    assert [e.field for e in raised.value.errors] == ["subject", "assignee_user_id"]
    assert isinstance(raised.value, sdk.EmrTasksError)


def test_an_error_answer_that_is_not_json_still_raises_a_clear_api_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    with _client(handler) as client, pytest.raises(sdk.ApiError) as raised:
        client.list_users()
    assert (raised.value.status_code, raised.value.error, raised.value.message) == (
        502,
        "http_error",
        "HTTP 502",
    )


def test_the_credentials_travel_as_the_three_headers_and_ids_stay_one_path_segment():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "task": TASK})

    with _client(handler) as client:
        client.get_task("task_1/../../jobs?x=1")
    request = seen[0]
    assert (request.headers["client_id"], request.headers["client_secret"]) == ("ci_1", "cs_1")
    assert request.headers["access_token"] == "at_1"
    assert request.url.raw_path == b"/v1/tasks/task_1%2F..%2F..%2Fjobs%3Fx%3D1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_wait_for_task_polls_until_the_status_is_final():
    statuses = iter(["processing", "processing", "created"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "task": {**TASK, "status": next(statuses)}})

    clock = FakeClock()
    with _client(handler, sleep=clock.sleep, monotonic=clock.monotonic) as client:
        task = client.wait_for_task("task_1", timeout=10, poll_interval=0.25)
    assert task.status == "created" and task.is_final
    assert clock.slept == [0.25, 0.25]


def test_wait_for_task_raises_timeout_when_the_task_stays_processing():
    clock = FakeClock()
    handler = _answer(200, {"success": True, "task": TASK})
    client = _client(handler, sleep=clock.sleep, monotonic=clock.monotonic)
    with client, pytest.raises(sdk.Timeout, match="task_1 still processing"):
        client.wait_for_task("task_1", timeout=2, poll_interval=0.5)
    assert sum(clock.slept) <= 2 and len(clock.slept) == 4


def _event(number: int) -> dict[str, object]:
    return {
        "id": f"evt_{number}",
        "access_token_reference_id": "ref",
        "object": "event",
        "created": "2026-11-30T11:50:27.362Z",
        "type": "task.created",
        "job_id": f"job_{number}",
        "data": {"task_id": f"task_{number}"},
        "delivery_status": None,
        "attempts": [],
    }


def _events_handler(total: int, seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        events = [_event(n) for n in range(1, total + 1)][(page - 1) * size : page * size]
        pagination = {
            "current_page": page,
            "total_pages": -(-total // size),
            "total_count": total,
            "page_size": size,
        }
        return httpx.Response(200, json={"success": True, "webhook_events": events, "pagination": pagination})

    return handler


def test_iter_events_follows_the_pages_to_the_last():
    seen: list[httpx.Request] = []
    with _client(_events_handler(5, seen)) as client:
        ids = [event.id for event in client.iter_events(page_size=2, job_id="job_x")]
    assert ids == ["evt_1", "evt_2", "evt_3", "evt_4", "evt_5"]
    assert [r.url.params["page"] for r in seen] == ["1", "2", "3"]
    assert {r.url.params["sort"] for r in seen} == {"created_at"}
    assert {r.url.params["job_id"] for r in seen} == {"job_x"}


async def test_the_async_client_iterates_events_and_maps_errors_alike():
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_events_handler(3, seen))
    async with sdk.AsyncClient("http://emrtasks.test", "ci_1", "cs_1", transport=transport) as client:
        ids = [event.id async for event in client.iter_events(page_size=1)]
    assert ids == ["evt_1", "evt_2", "evt_3"]
    assert "access_token" not in seen[0].headers
    transport = httpx.MockTransport(
        _answer(404, {"success": False, "error": "not_found", "message": "Not found."})
    )
    async with sdk.AsyncClient("http://emrtasks.test", "ci_1", "cs_1", "at_1", transport=transport) as client:
        with pytest.raises(sdk.NotFoundError):
            await client.get_job("job_404")


def test_results_are_frozen():
    with _client(_answer(200, {"success": True, "task": TASK})) as client:
        task = client.get_task("task_1")
    with pytest.raises(AttributeError):
        task.status = "created"  # type: ignore[misc]
    assert task.created.tzinfo is not None
