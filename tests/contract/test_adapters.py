"""The contract suite, run over every adapter against its vendor fake (tests/contract/cases/)."""

import dataclasses

import httpx
import pytest

from emrtasks.domain import outcomes
from emrtasks.emr import base
from emrtasks.service import create_task
from tests.contract import harness
from tests.contract.cases import all_cases

CASES = all_cases()


@pytest.fixture(params=CASES, ids=[c.emr for c in CASES])
def case(request: pytest.FixtureRequest) -> harness.Case:
    return request.param


@pytest.fixture
async def wired(case):
    async with harness.wired(case) as pair:
        yield pair


_patient = harness.patient


async def _find(adapter, marker):
    """The lookup as the create_task job makes it (some EMRs look in the patient's chart)."""
    return await create_task.find_written(adapter, harness.task_row(marker, "MRN-1001"))


async def test_a_task_is_created_once_and_found_again_by_its_marker(case, wired):
    adapter, fake = wired
    outcome = await adapter.create_task(case.request, await _patient(adapter), marker="task_contract_1")
    assert isinstance(outcome, outcomes.Created), outcome
    assert len(fake.created) == 1
    if adapter.rules.finds_by_marker:
        assert await _find(adapter, "task_contract_1") == outcome
        assert isinstance(await _find(adapter, "task_never_sent"), outcomes.Absent)


async def test_patients_resolve_by_mrn_none_one_or_several(wired):
    adapter, _fake = wired
    assert [p.mrn for p in await adapter.search_patients("MRN-1001")] == ["MRN-1001"]
    assert await adapter.search_patients("MRN-9999") == []
    assert len(await adapter.search_patients("MRN-2000")) == 2
    missing = await create_task.resolve_patient(adapter, "MRN-9999")
    shared = await create_task.resolve_patient(adapter, "MRN-2000")
    assert isinstance(missing, outcomes.Rejected) and missing.code == outcomes.PATIENT_NOT_FOUND
    assert isinstance(shared, outcomes.Rejected) and shared.code == outcomes.PATIENT_AMBIGUOUS


async def test_the_directory_lists_the_assignee_and_the_call_types(case, wired):
    adapter, _fake = wired
    users = {u.id for u in await adapter.list_users()}
    assert case.request.assignee_user_id is None or case.request.assignee_user_id in users
    assert case.unknown_assignee not in users
    call_types = {c.id for c in await adapter.list_call_types()}
    assert case.request.phone_call_type_id is None or case.request.phone_call_type_id in call_types


async def test_an_assignee_the_emr_does_not_know_is_refused(case, wired):
    adapter, fake = wired
    request = dataclasses.replace(case.request, assignee_user_id=case.unknown_assignee)
    outcome = await adapter.create_task(request, await _patient(adapter), marker="task_contract_2")
    assert isinstance(outcome, outcomes.Rejected), outcome
    assert outcome.code in (outcomes.USER_NOT_FOUND, outcomes.EMR_REJECTED)
    assert fake.created == []


async def test_an_expired_token_is_renewed_or_reported_as_login_required(case, wired):
    adapter, fake = wired
    patient = await _patient(adapter)
    fake.expire_tokens()
    outcome = await adapter.create_task(case.request, patient, marker="task_contract_3")
    if case.refreshes_tokens:
        assert isinstance(outcome, outcomes.Created), outcome
        assert len(fake.token_requests()) >= 2
    else:
        assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED


async def test_refused_credentials_mean_login_required(case, wired):
    adapter, fake = wired
    fake.expire_tokens()
    fake.refuse_credentials = True
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.search_patients("MRN-1001")
    assert caught.value.outcome.code == outcomes.LOGIN_REQUIRED


async def test_a_429_is_retried_later_after_its_retry_after(case, wired):
    adapter, fake = wired
    patient = await _patient(adapter)
    fake.fail_next(429, {"retry-after": "7", "content-type": "application/json"})
    outcome = await adapter.create_task(case.request, patient, marker="task_contract_4")
    assert outcome == outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, outcome.description, 7.0)
    assert fake.created == []


@pytest.mark.parametrize(("status", "expected"), [(503, outcomes.RetryLater), (500, outcomes.Unknown)])
async def test_server_errors_on_a_write_are_retried_or_left_unknown(case, wired, status, expected):
    adapter, fake = wired
    patient = await _patient(adapter)
    fake.fail_next(status)
    assert isinstance(await adapter.create_task(case.request, patient, marker="task_contract_5"), expected)


async def test_a_timeout_after_sending_is_unknown_and_the_lookup_finds_the_write(case, wired):
    adapter, fake = wired
    patient = await _patient(adapter)
    fake.timeout_after_next_write = True
    outcome = await adapter.create_task(case.request, patient, marker="task_contract_6")
    assert isinstance(outcome, outcomes.Unknown), outcome
    assert len(fake.created) == 1  # the EMR did write it
    if adapter.rules.finds_by_marker:
        found = await _find(adapter, "task_contract_6")
        if isinstance(found, outcomes.Absent):  # written in part (DrChrono: a task without its note)
            found = await adapter.create_task(case.request, patient, marker="task_contract_6")
        assert isinstance(found, outcomes.Created), found
        assert len(fake.created) == 1  # the retry finished the write, it did not write again


async def test_an_emr_that_cannot_be_reached_is_retried_later(case):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter, http = harness.build_adapter(case, case.make_fake(), transport=httpx.MockTransport(refuse))
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.search_patients("MRN-1001")
    assert isinstance(caught.value.outcome, outcomes.RetryLater)
    await http.aclose()


def test_every_adapter_documents_and_checks_its_settings(case):
    from emrtasks import emr

    module = emr.module_for(case.emr)
    assert module.SETTINGS, "an EMR declares the settings it needs"
    required = [s.name for s in module.SETTINGS if s.required and s.default is None]
    for name in required:
        config = {k: v for k, v in case.config(harness.BASE_URL).items() if k != name}
        assert any(name in p for p in module.check_config(config)), f"missing {name} is not reported"


# An EMR (or a proxy before it) can answer anything: none of it may become a 500 or a silent "not found".
MALFORMED = {
    "html": ("text/html; charset=utf-8", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "json_of_the_wrong_shape": ("application/json", b'[{"id": 1}, "two", null]'),
    "truncated_json": ("application/json", b'{"resourceType": "Bundle", "entry": [{"resou'),
    "empty_body": ("application/json", b""),
}


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_answer_to_a_read_is_an_emr_error(case, wired, kind):
    adapter, fake = wired
    content_type, body = MALFORMED[kind]
    fake.fail_next(200, {"content-type": content_type}, body)
    with pytest.raises(outcomes.AdapterError) as caught:
        await base.guarded(adapter).search_patients("MRN-1001")
    assert caught.value.outcome.code == outcomes.EMR_ERROR, caught.value.outcome
    assert isinstance(caught.value.outcome, outcomes.RetryLater)


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_answer_to_a_write_is_never_taken_for_success(case, wired, kind):
    adapter, fake = wired
    patient = await _patient(adapter)
    content_type, body = MALFORMED[kind]
    fake.fail_next(201, {"content-type": content_type}, body)
    outcome = await base.guarded(adapter).create_task(case.request, patient, marker="task_contract_7")
    # The answer came back from the EMR, so the write may have happened: never Created, never a crash.
    assert isinstance(outcome, outcomes.Unknown | outcomes.RetryLater), outcome
