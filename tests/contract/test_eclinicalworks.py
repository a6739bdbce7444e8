"""The eClinicalWorks adapter's exact requests (SMART client assertion, FHIR searches, the telephone
Encounter), its reading of eCW's answers, and the fake's contract."""

import base64
import dataclasses
import json
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from emrtasks.domain import directory, outcomes
from emrtasks.emr import eclinicalworks
from tests.contract import harness
from tests.contract.cases.eclinicalworks import CASE
from tests.contract.fakes import eclinicalworks as fake_ecw
from tests.contract.keys import FixedSigner

PATIENT = directory.Patient("p-1001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "unknown", "")


wired = harness.wired_fixture(CASE)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _jwt(token: str) -> tuple[dict, dict, bytes, bytes]:
    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, claims, signature = token.split(".")
    signed = f"{header}.{claims}".encode()
    return json.loads(unb64(header)), json.loads(unb64(claims)), unb64(signature), signed


async def test_the_token_request_is_a_smart_backend_services_client_assertion(wired):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    [token] = fake.token_requests()
    assert (token.method, str(token.url)) == ("POST", f"http://emr.test{fake_ecw.TOKEN_PATH}")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in token.headers
    form = _form(token)
    assert set(form) == {"grant_type", "scope", "client_assertion_type", "client_assertion"}
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == eclinicalworks.SCOPE
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header, claims, _signature, _signed = _jwt(form["client_assertion"])
    assert header == {"alg": "RS384", "typ": "JWT", "kid": fake_ecw.SIGNER.kid}
    assert claims["iss"] == claims["sub"] == fake_ecw.CLIENT_ID
    assert claims["aud"] == f"http://emr.test{fake_ecw.TOKEN_PATH}"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    public = jwt.PyJWK(fake_ecw.SIGNER.jwk).key
    jwt.decode(form["client_assertion"], public, algorithms=["RS384"], audience=claims["aud"])


async def test_an_es384_deployment_key_signs_es384_with_its_kid():
    signer = FixedSigner("ES384")
    fake = fake_ecw.FakeEcw()
    fake.jwks[signer.kid] = signer.jwk
    adapter, http = harness.build_adapter(dataclasses.replace(CASE, extra={"signer": signer}), fake)
    assert [p.mrn for p in await adapter.search_patients("MRN-1001")] == ["MRN-1001"]
    header = _jwt(_form(fake.token_requests()[0])["client_assertion"])[0]
    assert header == {"alg": "ES384", "typ": "JWT", "kid": signer.kid}
    await http.aclose()


async def test_an_assertion_the_token_endpoint_refuses_is_login_required():
    fake = fake_ecw.FakeEcw()
    unregistered = dataclasses.replace(CASE, extra={"signer": FixedSigner("RS384")})
    adapter, http = harness.build_adapter(unregistered, fake)
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED
    assert fake.created == []
    await http.aclose()


async def test_every_token_request_signs_a_new_assertion(wired):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    fake.expire_tokens()
    await adapter.search_patients("MRN-1001")
    jtis = [_jwt(_form(t)["client_assertion"])[1]["jti"] for t in fake.token_requests()]
    assert len(jtis) == 2 and jtis[0] != jtis[1]


async def test_patients_are_searched_by_the_connections_mrn_system_only(wired):
    adapter, fake = wired
    [patient] = await adapter.search_patients("MRN-1001")
    [search] = fake.api_requests()
    assert (search.method, search.url.path) == ("GET", "/Patient")
    assert search.url.params["identifier"] == f"{fake_ecw.MRN_SYSTEM}|MRN-1001"
    assert search.headers["authorization"] == "Bearer token-1"
    assert search.headers["accept"] == "application/fhir+json"
    assert patient.emr_patient_id == "p-1001"  # not p-other, whose MRN-1001 is in another system


async def test_the_create_posts_a_telephone_encounter_carrying_every_field(wired):
    adapter, fake = wired
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_01abc")
    [create] = fake.api_requests()
    assert (create.method, create.url.path) == ("POST", "/Encounter")
    assert create.headers["content-type"] == "application/fhir+json"
    assert create.headers["authorization"] == "Bearer token-1"
    sent = json.loads(create.content)
    start = sent.pop("period")["start"]
    assert start.endswith("+00:00")
    assert sent == {
        "resourceType": "Encounter",
        "identifier": [{"system": "urn:emrtasks:task", "value": "task_01abc"}],
        "status": "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "VR",
            "display": "virtual",
        },
        "type": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "185317003",
                        "display": "Telephone encounter",
                    }
                ],
                "text": "Telephone Encounter",
            }
        ],
        "subject": {"reference": "Patient/p-1001"},
        "participant": [
            {
                "type": [{"coding": [_role("PPRF", "primary performer")]}],
                "individual": {"reference": "Practitioner/dr-1"},
            },
            {
                "type": [{"coding": [_role("PART", "Participant")], "text": "Assigned to"}],
                "individual": {"reference": "Practitioner/staff-7"},
            },
        ],
        "location": [{"location": {"reference": "Location/loc-1"}}],
        "text": {
            "status": "additional",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
            "<p>Patient asks for a refill of lisinopril 10 mg.<br/>Pharmacy: CVS on Main St.</p></div>",
        },
        "reasonCode": [
            {
                "coding": [
                    {"system": "urn:emrtasks:call-type", "code": "refill", "display": "Medication refill"}
                ],
                "text": "Refill request",
            }
        ],
    }
    assert outcome == outcomes.Created(fake.created[0]["id"])


def _role(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
        "code": code,
        "display": display,
    }


async def test_the_reason_falls_back_to_the_call_type_and_is_left_out_without_either(wired):
    adapter, fake = wired
    await adapter.create_task(dataclasses.replace(CASE.request, subject=None), PATIENT, marker="task_1")
    assert fake.created[0]["reasonCode"][0]["text"] == "Medication refill"
    bare = dataclasses.replace(CASE.request, subject=None, phone_call_type_id=None)
    await adapter.create_task(bare, PATIENT, marker="task_2")
    assert "reasonCode" not in fake.created[1]


async def test_the_description_is_escaped_into_the_narrative(wired):
    adapter, fake = wired
    request = dataclasses.replace(CASE.request, description='Ask about <script> & "dose"')
    await adapter.create_task(request, PATIENT, marker="task_1")
    assert "&lt;script&gt; &amp; &quot;dose&quot;" in fake.created[0]["text"]["div"]


async def test_the_lookup_asks_for_our_identifier_strictly(wired):
    adapter, fake = wired
    await adapter.find_task("task_01abc")
    [search] = fake.api_requests()
    assert (search.method, search.url.path) == ("GET", "/Encounter")
    assert search.url.params["identifier"] == "urn:emrtasks:task|task_01abc"
    assert search.headers["prefer"] == "handling=strict"


async def test_encounters_without_our_marker_leave_the_lookup_unknown(wired):
    adapter, fake = wired
    stray = {"resourceType": "Encounter", "id": "e-9", "status": "finished"}
    body = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": stray}]}
    fake.fail_next(200, body=json.dumps(body).encode())
    assert isinstance(await adapter.find_task("task_01abc"), outcomes.Unknown)


async def test_a_search_the_server_refuses_leaves_the_lookup_unknown(wired):
    adapter, fake = wired
    fake.fail_next(400, body=b'{"resourceType": "OperationOutcome", "issue": []}')
    assert isinstance(await adapter.find_task("task_01abc"), outcomes.Unknown)


async def test_an_unknown_patient_is_patient_not_found(wired):
    adapter, _fake = wired
    stranger = dataclasses.replace(PATIENT, emr_patient_id="p-404")
    outcome = await adapter.create_task(CASE.request, stranger, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.PATIENT_NOT_FOUND


async def test_an_unknown_facility_is_emr_rejected_not_a_user_problem():
    fake = fake_ecw.FakeEcw()
    case = dataclasses.replace(CASE, config=lambda url: {**CASE.config(url), "location_id": "loc-9"})
    adapter, http = harness.build_adapter(case, fake)
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.EMR_REJECTED
    await http.aclose()


async def test_practitioners_are_the_users_and_call_types_come_from_the_connection(wired):
    adapter, _fake = wired
    assert {u.id for u in await adapter.list_users()} == {"dr-1", "staff-7", "staff-8"}
    assert [c.id for c in await adapter.list_call_types()] == ["refill", "labs"]


def test_the_rules_require_an_assignee_and_refuse_a_notify_list():
    described = eclinicalworks.RULES.describe()
    assert described["required"] == ["description", "patient_mrn", "assignee_user_id"]
    assert described["unsupported"] == ["notify_list"]
    assert described["fields"]["subject"]["max_length"] == 50
    assert described["finds_by_marker"] is True


def test_a_connection_made_with_its_own_private_key_still_passes_its_settings_check():
    config = {**CASE.config(harness.BASE_URL), "private_key": "-----BEGIN PRIVATE KEY-----", "key_id": "k"}
    assert eclinicalworks.check_config(config) == []


# --- the fake enforces eCW's contract ---


async def _post(path: str, **kwargs) -> httpx.Response:
    return await harness.post_to_fake(fake_ecw.FakeEcw(), path, **kwargs)


def _encounter() -> dict:
    adapter = eclinicalworks.build(None, CASE.config(harness.BASE_URL), _deps())
    return adapter.encounter(CASE.request, PATIENT, "task_1")


def _deps():
    from emrtasks.emr import base

    return base.AdapterDeps(sandbox_store=None, http=httpx.AsyncClient(), signer=fake_ecw.SIGNER)


@pytest.mark.parametrize("missing", ["status", "class", "type", "subject"])
async def test_the_fake_refuses_an_encounter_missing_a_required_element(missing):
    encounter = _encounter()
    del encounter[missing]
    answer = await _post("/Encounter", json=encounter, headers={"content-type": "application/fhir+json"})
    assert answer.status_code == 400
    assert f"Encounter.{missing}" in answer.json()["issue"][0]["diagnostics"]


async def test_the_fake_writes_telephone_encounters_only_and_as_fhir_json():
    office = {
        **_encounter(),
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "308335008"}]}],
    }
    refused = await _post("/Encounter", json=office, headers={"content-type": "application/fhir+json"})
    assert (refused.status_code, refused.json()["issue"][0]["diagnostics"]) == (
        422,
        "Only Telephone Encounters can be created",
    )
    as_form = await _post("/Encounter", data={"resourceType": "Encounter"})
    assert as_form.status_code == 415
    accepted = await _post("/Encounter", json=_encounter(), headers={"content-type": "application/fhir+json"})
    assert accepted.status_code == 201


async def test_the_fake_refuses_an_assertion_signed_by_another_key_or_replayed():
    fake = fake_ecw.FakeEcw()
    url = f"http://emr.test{fake_ecw.TOKEN_PATH}"
    own = eclinicalworks.build(None, CASE.config(harness.BASE_URL), _deps())._auth
    other = dataclasses.replace(_deps(), signer=FixedSigner("RS384"))
    forged = eclinicalworks.build(None, CASE.config(harness.BASE_URL), other)._auth

    async def assertion(auth) -> str:
        return (await auth.assertion_form())["client_assertion"]

    assert "kid" in fake.check_assertion(await assertion(forged), url)
    signed = await assertion(own)
    assert fake.check_assertion(signed, url) is None
    assert "replayed" in fake.check_assertion(signed, url)
    assert "aud" in fake.check_assertion(await assertion(own), "http://elsewhere/token")


# --- the telephone encounter against US Core 6.1.0 Encounter on R4 (tests/contract/specs/eclinicalworks) ---


def test_the_adapters_telephone_encounter_conforms_to_us_core_encounter():
    assert fake_ecw.encounter_problems(_encounter()) == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"identifier": [{"value": "task_1"}]}, "Encounter.identifier.system"),
        ({"identifier": [{"system": "urn:emrtasks:task"}]}, "Encounter.identifier.value"),
        ({"type": []}, "Encounter.type"),
        ({"subject": {"reference": "Group/7"}}, "Encounter.subject"),
        ({"status": "open"}, "Encounter.status"),
        ({"note": [{"text": "an R4 Encounter has no note"}]}, "Encounter.note"),
        ({"period": {"start": "yesterday"}}, "Encounter.period.start"),
        (
            {"participant": [{"individual": {"reference": "Patient/p-1001"}}]},
            "Encounter.participant.individual",
        ),
    ],
)
async def test_the_fake_refuses_an_encounter_us_core_or_r4_refuses_naming_the_element(changes, field):
    encounter = {**_encounter(), **changes}
    answer = await _post("/Encounter", json=encounter, headers={"content-type": "application/fhir+json"})
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert field in issue["expression"], issue


async def test_the_fake_refuses_an_encounter_search_by_a_parameter_us_core_does_not_define():
    fake = fake_ecw.FakeEcw()
    fake.tokens.add("t")
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url="http://emr.test") as http:
        answer = await http.get(
            "/Encounter",
            params={"marker": "task_1"},
            headers={"authorization": "Bearer t", "prefer": "handling=strict"},
        )
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == ["marker"]
