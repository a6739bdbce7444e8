"""Retries of `create_task` and reads, against httpx.MockTransport: which answers are tried again, how
long the client waits (recorded, never slept), and that every try carries the same Idempotency-Key."""

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

import emrtasks_client as sdk
from emrtasks_client import _retry

ACCEPTED = {"success": True, "message": "Task processing.", "task_id": "task_1", "job_id": "job_1"}
TASK = {
    "description": "Review labs",
    "patient_mrn": "MRN-1001",
    "subject": "Call",
    "assignee_user_id": "usr_1",
}
Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests from a list (a status and headers, or an exception to raise), then 202."""

    def __init__(self, *steps: tuple[int, dict[str, str], dict[str, object]] | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            return httpx.Response(202, json=ACCEPTED)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        status, headers, body = step
        return httpx.Response(status, headers=headers, json=body)

    @property
    def keys(self) -> list[str | None]:
        return [request.headers.get("idempotency-key") for request in self.requests]


def _client(script: Handler, delays: list[float], **policy: float) -> sdk.Client:
    return sdk.Client(
        "http://emrtasks.test",
        "ci_1",
        "cs_1",
        "at_1",
        transport=httpx.MockTransport(script),
        retry=sdk.RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=delays.append,
        random=lambda: 0.0,
    )


def _busy(
    status: int, retry_after: str | None = None, error: str = "busy"
) -> tuple[int, dict[str, str], dict[str, object]]:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return status, headers, {"success": False, "error": error, "message": "Try later."}


def test_a_429_is_retried_after_its_retry_after_with_the_same_key():
    script, delays = Script(_busy(429, "3")), []
    with _client(script, delays) as client:
        accepted = client.create_task(**TASK)
    assert accepted.task_id == "task_1"
    assert delays == [3.0]
    assert len(script.requests) == 2
    assert script.keys[0] == script.keys[1] == f'"{accepted.idempotency_key}"'


def test_503s_are_retried_with_exponential_backoff():
    script, delays = Script(_busy(503), _busy(503), _busy(503)), []
    with _client(script, delays, base_delay=0.5) as client:
        client.create_task(**TASK)
    # random() == 0 takes the lower end of the jitter: half of 0.5, 1, 2.
    assert delays == [0.25, 0.5, 1.0]
    assert len(set(script.keys)) == 1


def test_jitter_spreads_the_delay_between_half_and_all_of_the_backoff():
    policy = sdk.RetryPolicy(base_delay=1.0, max_delay=100.0)
    assert policy.delay(3, None, lambda: 0.0) == 2.0
    assert policy.delay(3, None, lambda: 0.999) == pytest.approx(3.998)
    assert policy.delay(3, 5.0, lambda: 0.0) == 5.0  # never sooner than Retry-After


def test_a_connection_error_is_retried_with_the_same_key():
    script, delays = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow")), []
    with _client(script, delays) as client:
        accepted = client.create_task(**TASK, idempotency_key="order-42-task")
    assert len(script.requests) == 3
    assert script.keys == ['"order-42-task"'] * 3
    assert accepted.idempotency_key == "order-42-task"


def test_a_key_still_in_flight_is_retried_but_another_conflict_is_not():
    script, delays = Script(_busy(409, "1", error="idempotency_key_in_flight")), []
    with _client(script, delays) as client:
        assert client.create_task(**TASK).job_id == "job_1"
    assert delays == [1.0]
    script, delays = Script(_busy(409, error="webhook_exists")), []
    with _client(script, delays) as client, pytest.raises(sdk.ConflictError):
        client.create_task(**TASK)
    assert delays == []


def test_retries_are_bounded_and_the_last_answer_is_raised():
    script, delays = Script(*[_busy(503, "1")] * 10), []
    with _client(script, delays, max_attempts=3) as client, pytest.raises(sdk.ServiceUnavailable) as raised:
        client.create_task(**TASK)
    assert len(script.requests) == 3 and len(delays) == 2
    assert raised.value.retry_after == 1.0
    assert len(set(script.keys)) == 1


def test_connection_errors_past_the_bound_raise_transport_error():
    script, delays = Script(*[httpx.ConnectError("refused")] * 5), []
    with _client(script, delays, max_attempts=2) as client, pytest.raises(sdk.TransportError) as raised:
        client.get_task("task_1")
    assert len(script.requests) == 2
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_a_retry_after_longer_than_max_delay_is_raised_at_once():
    script, delays = Script(_busy(429, "120")), []
    with _client(script, delays, max_delay=30) as client, pytest.raises(sdk.RateLimitError) as raised:
        client.create_task(**TASK)
    assert raised.value.retry_after == 120.0
    assert delays == [] and len(script.requests) == 1


def test_a_refused_request_is_not_retried():
    script, delays = Script(_busy(400, error="missing_field")), []
    with _client(script, delays) as client, pytest.raises(sdk.ValidationError):
        client.create_task(**TASK)
    assert len(script.requests) == 1 and delays == []


def test_webhook_registration_is_never_sent_twice():
    script, delays = Script(httpx.ConnectError("refused"), _busy(503)), []
    with _client(script, delays) as client, pytest.raises(sdk.TransportError):
        client.register_webhook("https://hooks.example.com/x")
    assert len(script.requests) == 1


def test_retry_after_as_an_http_date_counts_the_seconds_until_then():
    before = datetime(2026, 12, 4, 11, 59, 50, tzinfo=UTC)
    assert _retry.parse_retry_after("Fri, 04 Dec 2026 12:00:00 GMT", now=before) == 10.0
    after = datetime(2026, 12, 4, 12, 0, 5, tzinfo=UTC)
    assert _retry.parse_retry_after("Fri, 04 Dec 2026 12:00:00 GMT", now=after) == 0.0
    assert _retry.parse_retry_after("soon") is None
    assert _retry.parse_retry_after(None) is None


def test_a_policy_of_one_attempt_never_retries():
    script, delays = Script(_busy(503)), []
    with _client(script, delays, max_attempts=1) as client, pytest.raises(sdk.ServiceUnavailable):
        client.create_task(**TASK)
    assert len(script.requests) == 1


def test_a_caller_key_that_cannot_travel_as_a_header_is_refused_before_sending():
    script, delays = Script(), []
    with _client(script, delays) as client:
        for bad in ("", 'say "hi"', "é", "x" * 256):
            with pytest.raises(ValueError, match="idempotency_key"):
                client.create_task(**TASK, idempotency_key=bad)
    assert script.requests == []


async def test_the_async_client_retries_a_429_and_a_connection_error_with_the_same_key():
    script, delays = Script(_busy(429, "2"), httpx.ConnectError("refused")), []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with sdk.AsyncClient(
        "http://emrtasks.test",
        "ci_1",
        "cs_1",
        "at_1",
        transport=httpx.MockTransport(script),
        sleep=sleep,
        random=lambda: 0.0,
    ) as client:
        accepted = await client.create_task(**TASK)
    assert delays == [2.0, 0.5]
    assert script.keys == [f'"{accepted.idempotency_key}"'] * 3
