"""How the gnuhealth adapter reads GNU Health's answers that the real server is hard to make give on
demand (a refused call as HTTP 200 with `error`, a throttled login, a server error to a write); the
rest is tested against a real GNU Health in tests/gnuhealth/."""

import json
from collections.abc import Callable

import httpx

from emrtasks.domain import directory, outcomes, tasks
from emrtasks.emr import base, gnuhealth

PATIENT = directory.Patient("7", "GH-1001", "Ava", "Thompson", "", "f", "")
REQUEST = tasks.TaskRequest("Call back", "GH-1001", "Results", assignee_user_id="dreyes")
CONFIG = {"url": "http://127.0.0.1:9", "database": "health", "username": "frontdesk", "password": "pw"}
Answer = Callable[[str, list[object]], httpx.Response]


def _adapter(answer: Answer) -> tuple[gnuhealth.GnuHealthAdapter, list[str]]:
    methods: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        methods.append(body["method"])
        if body["method"] == "common.db.login":
            return answer("common.db.login", body["params"])
        assert request.headers["authorization"].startswith("Session ")
        return answer(body["method"], body["params"])

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    deps = base.AdapterDeps(sandbox_store=None, http=client)
    connection = tasks.Connection("con_u", "cli_u", "gnuhealth", "gnuhealth", None, "active", {})
    return gnuhealth.build(connection, base.with_defaults(gnuhealth.SETTINGS, CONFIG), deps), methods


def _tryton(create: httpx.Response | None = None, login: int = 200) -> Answer:
    def answer(method: str, params: list[object]) -> httpx.Response:
        if method == "common.db.login":
            return httpx.Response(login, json={"id": 0, "result": [5, "key"]} if login == 200 else None)
        if method == "model.gnuhealth.appointment.search_read":
            return httpx.Response(200, json={"id": 1, "result": []})
        if method == "model.gnuhealth.healthprofessional.search_read":
            found = [{"id": 3, "party.": {"internal_user.": {"login": "dreyes"}}}]
            return httpx.Response(200, json={"id": 1, "result": found})
        assert create is not None, method
        return create

    return answer


async def test_a_create_refused_with_an_error_member_is_rejected_with_its_first_line_only():
    error = ["The patient is not valid.", "Traceback (most recent call last): ..."]
    adapter, _ = _adapter(_tryton(httpx.Response(200, json={"id": 3, "error": error})))
    outcome = await adapter.create_task(REQUEST, PATIENT, "task_u1")
    assert outcome == outcomes.Rejected(
        outcomes.EMR_REJECTED, "GNU Health refused the call: The patient is not valid."
    )


async def test_a_server_error_to_the_create_is_unknown_and_a_created_id_is_read():
    failed, _ = _adapter(_tryton(httpx.Response(502)))
    created, methods = _adapter(_tryton(httpx.Response(200, json={"id": 3, "result": [41]})))
    assert isinstance(await failed.create_task(REQUEST, PATIENT, "task_u2"), outcomes.Unknown)
    assert await created.create_task(REQUEST, PATIENT, "task_u3") == outcomes.Created("41")
    assert methods == [
        "common.db.login",
        "model.gnuhealth.appointment.search_read",
        "model.gnuhealth.healthprofessional.search_read",
        "model.gnuhealth.appointment.create",
    ]


async def test_a_throttled_login_is_retried_later_and_an_unknown_database_needs_a_new_login():
    throttled, _ = _adapter(_tryton(login=429))
    missing, methods = _adapter(_tryton(login=404))
    later = await throttled.create_task(REQUEST, PATIENT, "task_u4")
    refused = [await missing.create_task(REQUEST, PATIENT, "task_u5") for _ in range(2)]
    assert isinstance(later, outcomes.RetryLater) and later.code == outcomes.EMR_RATE_LIMITED
    assert later.retry_after == gnuhealth.LOGIN_THROTTLED_SECONDS
    assert all(isinstance(r, outcomes.Rejected) and r.code == outcomes.LOGIN_REQUIRED for r in refused)
    assert methods == ["common.db.login"]  # refused once, never asked again


def test_the_config_names_a_bad_url_urgency_or_call_type_list():
    assert gnuhealth.check_config(CONFIG) == []
    problems = gnuhealth.check_config({**CONFIG, "url": "gnuhealth.local", "urgency": "z", "call_types": [1]})
    assert sorted(problems) == [
        "call_types must be a list of visit types",
        "urgency must be a, b or c",
        "url must start with https://",
    ]
