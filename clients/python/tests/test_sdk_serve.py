"""The SDK against a real `emrtasks serve` on loopback: every call of the public contract, both clients,
and a real webhook delivery verified with `verify_webhook`."""

import httpx
import pytest

import emrtasks_client as sdk

pytestmark = pytest.mark.e2e

TASK = {
    "subject": "Call back",
    "description": "Lab results are in.",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1001",
}


def test_a_created_task_is_waited_for_and_read_back_with_its_job_and_event(tenant):
    with sdk.Client(*tenant.args) as client:
        accepted = client.create_task(**TASK, notify_list=["usr_1002"])
        task = client.wait_for_task(accepted.task_id, timeout=30, poll_interval=0.05)
        job = client.get_job(accepted.job_id)
        events = client.list_events(job_id=accepted.job_id)
    assert accepted.task_id.startswith("task_") and not accepted.replayed
    assert (task.task_id, task.status, task.subject) == (accepted.task_id, "created", "Call back")
    assert task.notify_list == ("usr_1002",) and task.emr_task_id
    assert task.created.tzinfo is not None
    assert (job.job_id, job.kind, job.state, job.task_id) == (
        accepted.job_id,
        "create_task",
        "succeeded",
        task.task_id,
    )
    assert [e.type for e in events.items] == ["task.created"]
    assert events.items[0].data["emr_task_id"] == task.emr_task_id
    assert events.items[0].access_token_reference_id == "ref-sdk-shared"


def test_a_task_the_emr_refuses_ends_failed_with_its_reason(tenant):
    with sdk.Client(*tenant.args) as client:
        accepted = client.create_task(**{**TASK, "patient_mrn": "MRN-0404"})
        task = client.wait_for_task(accepted.task_id, timeout=30, poll_interval=0.05)
    assert task.status == "failed"
    assert [r.code for r in task.reasons] == ["PATIENT_NOT_FOUND"]


def test_the_same_idempotency_key_gives_the_first_answer_again(tenant):
    with sdk.Client(*tenant.args) as client:
        first = client.create_task(**TASK)
        again = client.create_task(**TASK, idempotency_key=first.idempotency_key)
        with pytest.raises(sdk.ValidationError) as reused:
            client.create_task(**{**TASK, "subject": "Other"}, idempotency_key=first.idempotency_key)
        client.wait_for_task(first.task_id, timeout=30, poll_interval=0.05)
    assert (again.task_id, again.job_id, again.replayed) == (first.task_id, first.job_id, True)
    assert (reused.value.status_code, reused.value.error) == (422, "idempotency_key_reused")


class LosesFirstAnswer(httpx.HTTPTransport):
    """Sends every request for real but drops the server's first answer, as a broken connection would."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.sent += 1
        if self.sent == 1:
            response.read()
            response.close()
            raise httpx.ReadError("the answer was lost", request=request)
        return response


def test_a_create_whose_answer_was_lost_is_retried_and_stored_once(tenant):
    with sdk.Client(*tenant.args) as reader:
        before = reader.list_events(page_size=1).total_count
    transport = LosesFirstAnswer()
    with sdk.Client(*tenant.args, transport=transport, sleep=lambda seconds: None) as client:
        accepted = client.create_task(**TASK)
        client.wait_for_task(accepted.task_id, timeout=30, poll_interval=0.05)
        after = client.list_events(page_size=1).total_count
    assert transport.sent >= 2 and accepted.replayed
    assert after - before == 1  # one task, one outcome


def test_a_refused_task_names_every_field_at_fault(tenant):
    with sdk.Client(*tenant.args) as client, pytest.raises(sdk.ValidationError) as raised:
        client.create_task(description="Review labs", patient_mrn="MRN-1001", assignee_user_id="usr_nobody")
    assert raised.value.error == "missing_field"
    assert {(e.field, e.code) for e in raised.value.errors} >= {
        ("subject", "missing_field"),
        ("assignee_user_id", "user_not_found"),
    }


def test_wrong_credentials_and_unknown_ids_raise_their_errors(tenant):
    wrong = sdk.Client(tenant.url, tenant.client_id, "cs_wrong", tenant.access_token)
    with wrong, pytest.raises(sdk.AuthenticationError):
        wrong.get_requirements()
    with sdk.Client(*tenant.args) as client, pytest.raises(sdk.NotFoundError):
        client.get_task("task_00000000000000000000000000")


def test_the_directory_calls_return_the_connections_emr_data(tenant):
    with sdk.Client(*tenant.args) as client:
        requirements = client.get_requirements()
        users = client.list_users()
        call_types = client.list_call_types()
        patients = client.list_patients("MRN-1001")
    assert (requirements.emr, requirements.rules) == ("sandbox", "subject_assignee")
    assert {"description", "patient_mrn", "subject", "assignee_user_id"} <= set(requirements.required)
    assert "phone_call_type_id" in requirements.unsupported
    assert requirements.fields["subject"]["max_length"] == 255
    assert "usr_1001" in {user.id for user in users}
    assert call_types and all(c.id and c.name for c in call_types)
    assert [p.mrn for p in patients.items] == ["MRN-1001"] and patients.total_count == 1


def test_iter_events_follows_every_page_of_a_clients_events(tenant):
    with sdk.Client(*tenant.args) as client:
        jobs = [client.create_task(**TASK).job_id for _ in range(3)]
        for job_id in jobs:
            client.wait_for_task(client.get_job(job_id).task_id or "", timeout=30, poll_interval=0.05)
        one_page = client.list_events(page_size=100, sort="created_at")
        paged = list(client.iter_events(page_size=1))
    assert one_page.total_count == len(paged) >= 3
    assert [e.id for e in paged] == [e.id for e in one_page.items]
    assert set(jobs) <= {e.job_id for e in paged}


def test_webhook_urls_are_registered_listed_and_deleted(hook_tenant, receiver):
    tenant = hook_tenant
    with sdk.Client(tenant.url, tenant.client_id, tenant.client_secret) as client:
        endpoint = client.register_webhook(receiver.url)
        with pytest.raises(sdk.ConflictError):
            client.register_webhook(receiver.url)
        listed = client.list_webhooks()
        client.delete_webhook(endpoint.id)
        with pytest.raises(sdk.NotFoundError):
            client.delete_webhook(endpoint.id)
        after = client.list_webhooks()
    assert endpoint.id.startswith("wh_") and endpoint.secret and endpoint.secret.startswith("whsec_")
    assert (endpoint.id, receiver.url, "active") in [(w.id, w.url, w.status) for w in listed]
    assert all(w.secret is None for w in listed)
    assert endpoint.id not in {w.id for w in after}


def test_a_real_delivery_verifies_and_a_changed_one_does_not(hook_tenant, receiver):
    with sdk.Client(*hook_tenant.args) as client:
        endpoint = client.register_webhook(receiver.url)
        accepted = client.create_task(**TASK)
        delivery = receiver.wait_for_task(accepted.task_id)
        client.delete_webhook(endpoint.id)
    assert endpoint.secret is not None
    event = sdk.verify_webhook(delivery.body, delivery.headers, endpoint.secret)
    assert (event.type, event.data["task_id"], event.job_id) == (
        "task.created",
        accepted.task_id,
        accepted.job_id,
    )
    assert event.id == delivery.headers["webhook-id"]
    with pytest.raises(sdk.WebhookVerificationError):
        sdk.verify_webhook(
            delivery.body.replace(b"task.created", b"task.failed"), delivery.headers, endpoint.secret
        )


def test_a_real_delivery_verifies_by_its_cobalt_header(hook_tenant, receiver):
    with sdk.Client(*hook_tenant.args) as client:
        endpoint = client.register_webhook(receiver.url)
        accepted = client.create_task(**TASK)
        delivery = receiver.wait_for_task(accepted.task_id)
        client.delete_webhook(endpoint.id)
    if "cobalt-verification" not in delivery.headers:
        pytest.skip("this emrtasks server does not send the cobalt-verification header")
    assert endpoint.secret is not None
    event = sdk.verify_webhook(delivery.body, delivery.headers, endpoint.secret, cobalt=True)
    assert event.data["task_id"] == accepted.task_id
    only_cobalt = {"cobalt-verification": delivery.headers["cobalt-verification"]}
    assert sdk.verify_webhook(delivery.body, only_cobalt, endpoint.secret, cobalt=True).id == event.id


async def test_the_async_client_creates_waits_and_reads_back(tenant):
    async with sdk.AsyncClient(*tenant.args) as client:
        accepted = await client.create_task(**TASK)
        task = await client.wait_for_task(accepted.task_id, timeout=30, poll_interval=0.05)
        job = await client.get_job(accepted.job_id)
        events = [e async for e in client.iter_events(job_id=accepted.job_id)]
        users = await client.list_users()
    assert task.status == "created" and job.state == "succeeded"
    assert [e.type for e in events] == ["task.created"]
    assert users
