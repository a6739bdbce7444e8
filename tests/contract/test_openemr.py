"""OpenEMR: the exact token, patient and message requests the adapter sends, how it reads OpenEMR's
answers, and that the fake holds the adapter to what OpenEMR's code accepts and refuses."""

import dataclasses
import json
from urllib.parse import parse_qs

import httpx
import pytest

from emrtasks.domain import directory, outcomes
from emrtasks.emr import openemr
from tests.contract import harness
from tests.contract.cases.openemr import CASE
from tests.contract.fakes.openemr import (
    CLIENT_ID,
    CLIENT_SECRET,
    MESSAGE_RULES,
    PASSWORD,
    USERNAME,
    USERS,
    FakeOpenEmr,
)

PATIENT = directory.Patient("1", "MRN-1001", "Ava", "Thompson", "1984-03-12", "Female", "555-0101")
MESSAGE_URL = "http://emr.test/apis/default/api/patient/1/message"


wired = harness.wired_fixture(CASE)


async def _adapter_with(fake, **config):
    case = dataclasses.replace(CASE, config=lambda base_url: {**CASE.config(base_url), **config})
    return harness.build_adapter(case, fake)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _messages(fake: FakeOpenEmr) -> list[httpx.Request]:
    return [r for r in fake.api_requests() if r.method == "POST"]


async def test_the_first_call_logs_in_with_the_password_grant_as_openemr_documents(wired):
    adapter, fake = wired
    await adapter.list_users()
    [login] = fake.token_requests()
    assert (login.method, str(login.url)) == ("POST", "http://emr.test/oauth2/default/token")
    assert login.headers["content-type"] == "application/x-www-form-urlencoded"
    assert _form(login) == {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": openemr.DEFAULT_SCOPE,
        "user_role": "users",
        "username": USERNAME,
        "password": PASSWORD,
    }
    assert "offline_access" in openemr.DEFAULT_SCOPE.split()  # so that OpenEMR returns a refresh token
    users, *records = fake.api_requests()
    assert all(r.headers["authorization"] == "Bearer token-1" for r in [users, *records])


async def test_an_expired_token_is_renewed_with_the_rotating_refresh_token(wired):
    adapter, fake = wired
    await adapter.list_users()
    fake.expire_tokens()
    await adapter.list_users()
    fake.expire_tokens()
    await adapter.list_users()
    grants = [_form(r) for r in fake.token_requests()]
    assert [g["grant_type"] for g in grants] == ["password", "refresh_token", "refresh_token"]
    assert grants[1] == {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "refresh-1",
    }
    assert grants[2]["refresh_token"] == "refresh-2"  # the new one OpenEMR issued with the last renewal


async def test_a_refused_refresh_token_means_logging_in_again(wired):
    adapter, fake = wired
    await adapter.list_users()
    fake.expire_tokens()
    fake.refresh_tokens.clear()  # e.g. revoked, or three months old
    await adapter.list_users()
    assert [_form(r)["grant_type"] for r in fake.token_requests()] == [
        "password",
        "refresh_token",
        "password",
    ]


async def test_a_refused_login_is_login_required_for_reads_and_for_creates():
    fake = FakeOpenEmr()
    adapter, http = await _adapter_with(fake, password="wrong")
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.list_call_types()
    assert caught.value.outcome.code == outcomes.LOGIN_REQUIRED
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_o1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED
    assert fake.created == []
    await http.aclose()


async def test_a_patient_is_found_by_pubpid_through_fhir_then_read_for_its_internal_pid(wired):
    adapter, fake = wired
    found = await adapter.search_patients("MRN-1001")
    assert found == [PATIENT]  # patient 4, whose ss is MRN-1001, is not kept
    fhir_search, first, second, users, *details = fake.api_requests()
    assert str(fhir_search.url) == "http://emr.test/apis/default/fhir/Patient?identifier=MRN-1001"
    assert {str(first.url), str(second.url)} == {
        "http://emr.test/apis/default/api/patient/00000000-0000-0000-0000-000000009001",
        "http://emr.test/apis/default/api/patient/00000000-0000-0000-0000-000000009004",
    }
    assert str(users.url) == "http://emr.test/apis/default/api/user"  # the recipients, for the create
    assert {r.url.path.rsplit("/", 1)[-1] for r in details} == {
        u["uuid"] for u in USERS if u["active"] == "1"
    }


async def test_a_create_posts_one_json_message_with_the_six_fields_openemr_requires(wired):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_o2")
    assert outcome == outcomes.Created("1")
    [sent] = _messages(fake)
    assert (sent.method, str(sent.url)) == ("POST", MESSAGE_URL)
    assert sent.headers["authorization"] == "Bearer token-1"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "body": "Refill request\n\nPatient asks for a refill of lisinopril 10 mg; pharmacy on file.\n\n"
        "[emrtasks task_o2]",
        "groupname": "Default",
        "from": USERNAME,
        "to": "dreyes",
        "title": "Pharmacy",  # the phone call type is the note type
        "message_status": "New",
    }
    [note] = fake.created
    assert (note["pid"], note["assigned_to"], note["user"], note["title"]) == (
        1,
        "dreyes",
        USERNAME,
        "Pharmacy",
    )
    assert note["body"].endswith("[emrtasks task_o2]")


async def test_without_a_call_type_the_title_is_the_connections_note_type_and_the_sender_its_setting():
    fake = FakeOpenEmr()
    adapter, http = await _adapter_with(fake, note_type="Unassigned", sender="jlee", message_status="Read")
    request = dataclasses.replace(CASE.request, subject=None, phone_call_type_id=None)
    assert isinstance(await adapter.create_task(request, PATIENT, marker="task_o3"), outcomes.Created)
    body = json.loads(_messages(fake)[0].content)
    assert (body["title"], body["from"], body["message_status"]) == ("Unassigned", "jlee", "Read")
    assert body["body"] == f"{CASE.request.description}\n\n[emrtasks task_o3]"
    await http.aclose()


async def test_an_unknown_or_inactive_username_is_refused_before_writing_since_openemr_would_accept_it(wired):
    adapter, fake = wired
    for username in ("nobody", "oldnurse"):
        request = dataclasses.replace(CASE.request, assignee_user_id=username)
        outcome = await adapter.create_task(request, PATIENT, marker="task_o4")
        assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.USER_NOT_FOUND
    assert _messages(fake) == [] and fake.created == []
    # What OpenEMR itself does with such a message: stores it.
    answer = await _post(fake, dict(_valid_message(), to="nobody"))
    assert answer.status_code == 201 and fake.created[0]["assigned_to"] == "nobody"


async def test_the_recipients_are_read_once_and_trusted_for_a_while(wired):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    await adapter.create_task(CASE.request, PATIENT, marker="task_o5")
    await adapter.create_task(CASE.request, PATIENT, marker="task_o6")
    user_reads = [r for r in fake.api_requests() if r.url.path.endswith("/api/user")]
    assert len(user_reads) == 1
    assert [r.method for r in fake.api_requests()][-2:] == ["POST", "POST"]


async def test_users_are_active_logins_and_note_types_are_the_phone_call_types(wired):
    adapter, fake = wired
    users = {u.id: u for u in await adapter.list_users()}
    # no inactive user, no address-book entry, not the API's own system user
    assert set(users) == {"admin", USERNAME, "dreyes", "jlee"}
    assert users["dreyes"] == directory.User("dreyes", "Dana Reyes", "provider")
    assert users["jlee"].kind == "staff"
    call_types = await adapter.list_call_types()
    assert [c.id for c in call_types] == [
        "Unassigned",
        "Lab Results",
        "Pharmacy",
        "Other",
    ]  # not retired ones
    assert str(fake.api_requests()[-1].url) == "http://emr.test/apis/default/api/list/note_type"


async def test_usernames_come_from_each_users_own_record_since_the_user_list_never_has_them(wired):
    """GET /api/user answers without `username` or `authorized` (UserService::search); the username a
    message's `to` needs is on GET /api/user/:uuid (UserService::getUserByUUID selects the whole row)."""
    adapter, fake = wired
    users = await adapter.list_users()
    listing, *singles = fake.api_requests()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://emr.test"
    ) as c:
        answer = await c.get(listing.url.path, headers={"authorization": listing.headers["authorization"]})
    assert answer.json()["data"] and all("username" not in u for u in answer.json()["data"])
    assert all("authorized" not in u for u in answer.json()["data"])
    assert [r.url.path for r in singles] == [
        f"/apis/default/api/user/{u['uuid']}" for u in USERS if u["active"] == "1"
    ]
    assert sorted(u.id for u in users) == ["admin", "dreyes", USERNAME, "jlee"]
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_u1")
    assert outcome == outcomes.Created("1") and fake.created[0]["assigned_to"] == "dreyes"


async def test_a_user_gone_between_the_list_and_its_record_is_left_out(wired):
    adapter, fake = wired
    fake.gone_meanwhile.add(USERS[3]["uuid"])  # jlee: listed, then deleted before its own read
    users = {u.id for u in await adapter.list_users()}
    assert "jlee" not in users and "dreyes" in users


async def test_a_message_answered_as_openemrs_api_document_shows_it_is_created_too(wired):
    """The document says 200 with the standard envelope; the controller answers 201 `{"mid": n}`."""
    adapter, fake = wired
    fake.message_answer = "swagger"
    await adapter.search_patients("MRN-1001")
    assert await adapter.create_task(CASE.request, PATIENT, marker="task_u2") == outcomes.Created("1")


async def test_a_note_type_list_with_no_options_is_no_call_types_not_an_error(wired):
    """ListRestController::getOptions answers an empty list with 404 and a null body."""
    adapter, fake = wired
    fake.note_types = []
    assert await adapter.list_call_types() == []


async def test_openemrs_api_document_refuses_a_message_missing_a_field_or_sent_as_a_form():
    fake = FakeOpenEmr()
    fake.tokens.add("token-1")
    headers = {"authorization": "Bearer token-1"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.served_app()), base_url="http://emr.test"
    ) as client:
        body = {k: v for k, v in _valid_message().items() if k != "to"}
        missing = await client.post("/apis/default/api/patient/1/message", json=body, headers=headers)
        form = await client.post(
            "/apis/default/api/patient/1/message", data=_valid_message(), headers=headers
        )
        searched = await client.get(
            "/apis/default/api/patient", params={"pubpid": "MRN-1001"}, headers=headers
        )
    assert missing.status_code == 400 and "'to' is a required property" in missing.text
    assert form.status_code == 400 and "application/x-www-form-urlencoded" in form.text
    assert searched.status_code == 400 and "'pubpid' is not in the spec" in searched.text
    assert fake.created == [] and len(fake.spec_violations) == 3


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {"to": {"LengthBetween::TOO_SHORT": "to must be 2 characters or longer"}},
            outcomes.EMR_REJECTED,
        ),
        (404, None, outcomes.EMR_REJECTED),
        (403, {"error": "insufficient_scope"}, outcomes.LOGIN_REQUIRED),
    ],
)
async def test_openemr_refusals_of_a_message_are_rejected(wired, status, body, code):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    fake.fail_next(status, body=json.dumps(body).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_o7")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == code
    if status == 400:
        assert "to must be 2 characters or longer" in outcome.description


async def test_a_create_cannot_be_found_again_so_find_task_is_always_unknown(wired):
    adapter, _fake = wired
    await adapter.search_patients("MRN-1001")
    await adapter.create_task(CASE.request, PATIENT, marker="task_o8")
    assert isinstance(await adapter.find_task("task_o8"), outcomes.Unknown)
    assert not adapter.rules.finds_by_marker


def test_a_connection_is_checked_against_openemrs_length_rules():
    config = {**CASE.config("https://openemr.example.com"), "message_status": "a-very-long-status-name"}
    assert openemr.check_config(config) == ["message_status must be 2 to 20 characters (OpenEMR's rule)"]


# --- the fake enforces OpenEMR's contract ---


def _valid_message() -> dict[str, str]:
    return {
        "body": "Call back",
        "groupname": "Default",
        "from": USERNAME,
        "to": "dreyes",
        "title": "Other",
        "message_status": "New",
    }


async def _post(
    fake: FakeOpenEmr, body: dict, *, form: bool = False, token: str = "token-1"
) -> httpx.Response:
    fake.tokens.add("token-1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://emr.test"
    ) as client:
        headers = {"authorization": f"Bearer {token}"}
        if form:
            return await client.post("/apis/default/api/patient/1/message", data=body, headers=headers)
        return await client.post("/apis/default/api/patient/1/message", json=body, headers=headers)


@pytest.mark.parametrize("field", list(MESSAGE_RULES))
async def test_the_fake_refuses_a_message_missing_a_required_field(field):
    fake = FakeOpenEmr()
    body = {k: v for k, v in _valid_message().items() if k != field}
    answer = await _post(fake, body)
    assert answer.status_code == 400
    assert answer.json() == {
        field: {"Required::NON_EXISTENT_KEY": f"{field} must be provided, but does not exist"}
    }
    assert fake.created == []


async def test_the_fake_refuses_a_form_body_a_too_long_status_and_a_bad_token():
    fake = FakeOpenEmr()
    assert (await _post(fake, _valid_message(), form=True)).status_code == 400  # json_decode gives nothing
    assert (await _post(fake, dict(_valid_message(), message_status="x" * 21))).status_code == 400
    assert (await _post(fake, _valid_message(), token="stolen")).status_code == 401
    assert fake.created == []
    assert (await _post(fake, _valid_message())).status_code == 201


async def test_the_fake_token_endpoint_refuses_json_a_wrong_secret_and_a_wrong_password():
    fake = FakeOpenEmr()
    login = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "user_role": "users",
        "username": USERNAME,
        "password": PASSWORD,
        "scope": openemr.DEFAULT_SCOPE,
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://emr.test"
    ) as client:
        assert (await client.post("/oauth2/default/token", json=login)).status_code == 400
        wrong_secret = await client.post("/oauth2/default/token", data=dict(login, client_secret="x"))
        assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
        wrong_password = await client.post("/oauth2/default/token", data=dict(login, password="x"))
        assert (wrong_password.status_code, wrong_password.json()["error"]) == (400, "invalid_grant")
        no_role = await client.post(
            "/oauth2/default/token", data={k: v for k, v in login.items() if k != "user_role"}
        )
        assert no_role.status_code == 400
        good = await client.post("/oauth2/default/token", data=login)
        assert good.status_code == 200 and good.json()["refresh_token"] == "refresh-1"
