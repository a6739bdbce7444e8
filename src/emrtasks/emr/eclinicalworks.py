"""eClinicalWorks: a task is a telephone encounter, written through eCW's FHIR R4 API as an Encounter.

- eCW's FHIR writes (contracted through interop@eclinicalworks.com, builds V12.0.2+, each practice's
  activation) are Patient, Encounter ("Creates Telephone Encounter records only"), DocumentReference
  (document uploads), MedicationRequest, AllergyIntolerance, Condition and Immunization
  (https://explorer.usecobalt.com/ehr/eclinicalworks, from eCW's portal https://fhir.eclinicalworks.com);
  no Task or Communication. The telephone encounter is the one that routes to staff, so it is the task.
  eCW publishes no element list for it; its server conforms to US Core 6.1.0 on those builds (portal
  References: "USCDI v3 (STU6.1)"), so the Encounter meets US Core 6.1.0 Encounter on R4
  (https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-encounter.html; checked by the contract
  fake against the profile, tests/contract/specs/eclinicalworks/) and holds what Cobalt's telephone
  encounter holds: patient, provider, location, assigned-to staff, a reason of at most 50 characters
  (https://docs.usecobalt.com/api-reference/telephone-encounters/create).
- Create: `POST [base]/Encounter`, application/fhir+json: status in-progress (open), class VR ("virtual",
  a telephone conference), type SNOMED 185317003 "Telephone encounter", subject, participant (the
  connection's provider as PPRF, the assignee as PART "Assigned to"), location (the connection's
  facility), period.start, reasonCode (subject as text, call type as coding), and the description as
  narrative `text` (an R4 Encounter has no note).
- Marker: `Encounter.identifier` {marker_system, task id}, found with `GET [base]/Encounter?identifier=`
  (a US Core search parameter) and `Prefer: handling=strict`, so a server that ignores the parameter
  fails instead of answering everything; answers that do not carry the identifier leave it unknown.
- Patients: `GET [base]/Patient?identifier=<mrn_system>|<mrn>`; users: `GET [base]/Practitioner`.
- Auth: SMART Backend Services (http://hl7.org/fhir/smart-app-launch/backend-services.html): client
  credentials with a client assertion JWT signed RS384 or ES384 by the deployment's current key, its
  `kid` in our `/.well-known/jwks.json` (the JWKS URL registered for the app at eCW); emr/http.py.
  Backend tokens last 5 minutes, 250 calls a minute per practice code (secondary:
  https://app2.doordoc.com/docs/backend). Errors are OperationOutcomes.
"""

import html
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, fhir
from emrtasks.emr import http as emr_http

NAME = "eclinicalworks"
TITLE = "eClinicalWorks (FHIR telephone encounter)"
REASON_LIMIT = 50
RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=4000, target="Encounter.text (narrative)"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="Encounter.subject (Patient by MRN)"),
        rules.FieldRule("subject", False, max_length=REASON_LIMIT, target="Encounter.reasonCode.text"),
        rules.FieldRule(
            "assignee_user_id", True, max_length=64, target="Encounter.participant (PART, assigned to)"
        ),
        rules.FieldRule(
            "phone_call_type_id", False, max_length=64, target="Encounter.reasonCode.coding (call_types)"
        ),
    ),
    assignee_identified_by="eCW Practitioner id (provider or staff)",
    patient_identified_by="Patient.identifier with the connection's mrn_system",
    notes=(
        "A telephone encounter needs someone assigned: assignee_user_id is required.",
        f"subject is the encounter's reason (at most {REASON_LIMIT} characters).",
        "The provider and the facility come from the connection (provider_id, location_id).",
        "notify_list is not supported: a telephone encounter has no notify list.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
# 250 calls a minute per base URL (one per practice code), /token included, reset on the minute
# (secondary: https://app2.doordoc.com/docs/endpoints): one budget per base_url.
RATE_LIMIT: base.RateLimit | None = base.RateLimit(250, 60, scope="base_url")

MARKER_SYSTEM = "urn:emrtasks:task"
CALL_TYPE_SYSTEM = "urn:emrtasks:call-type"
SCOPE = "system/Patient.read system/Practitioner.read system/Encounter.read system/Encounter.write"
FHIR_JSON = "application/fhir+json"
TELEPHONE = {"system": "http://snomed.info/sct", "code": "185317003", "display": "Telephone encounter"}
VIRTUAL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"}
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
Clock = Callable[[], datetime]

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting(
        "base_url", "FHIR R4 base with the practice code, e.g. https://fhir4.eclinicalworks.com/fhir/r4/ABCD"
    ),
    base.Setting("token_url", "token endpoint from the practice's .well-known/smart-configuration"),
    base.Setting("client_id", "the backend app's client id", held_by=base.DEPLOYMENT),
    # Retired: the deployment's keys sign now (emrtasks keys create). Still declared so that a
    # connection made before keeps its stored value encrypted and can be updated; nothing reads them.
    base.Setting(
        "private_key",
        "no longer used: the deployment's keys sign",
        False,
        secret=True,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting("key_id", "no longer used: the deployment's keys sign", False, held_by=base.DEPLOYMENT),
    base.Setting("mrn_system", "the identifier system of the practice's MRNs"),
    base.Setting("provider_id", "Practitioner id of the provider the telephone encounters are filed under"),
    base.Setting("location_id", "Location id of the facility the telephone encounters are filed under"),
    base.Setting("call_types", 'phone call types as [{"code": "...", "display": "..."}]', False, kind=list),
    base.Setting("scope", "SMART system scopes", False, default=SCOPE),
    base.Setting("marker_system", "identifier system of our task ids", False, default=MARKER_SYSTEM),
    base.Setting("call_type_system", "code system of call_types", False, default=CALL_TYPE_SYSTEM),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    entries = config.get("call_types")
    if isinstance(entries, list) and not all(
        isinstance(e, dict) and isinstance(e.get("code"), str) for e in entries
    ):
        problems.append('call_types entries must be {"code": "...", "display": "..."}')
    return problems


def build(connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps) -> "EcwAdapter":
    http, signer = base.http_of(deps, NAME), base.signer_of(deps, NAME)

    def clock() -> datetime:
        return base.utc_now(deps)

    auth = emr_http.ClientAssertion(
        http,
        str(config["token_url"]),
        str(config["client_id"]),
        signer,
        scope=str(config.get("scope") or SCOPE),
        clock=clock,
    )
    return EcwAdapter(config, http, auth, clock)


class EcwAdapter:
    def __init__(
        self, config: Mapping[str, Any], http: httpx.AsyncClient, auth: emr_http.Auth, clock: Clock
    ) -> None:
        self.rules = RULES
        self._base = str(config["base_url"]).rstrip("/")
        self._mrn_system = str(config["mrn_system"])
        self._provider = str(config["provider_id"])
        self._location = str(config["location_id"])
        self._marker_system = str(config.get("marker_system") or MARKER_SYSTEM)
        self._call_type_system = str(config.get("call_type_system") or CALL_TYPE_SYSTEM)
        self._call_types = {
            str(e["code"]): str(e.get("display") or e["code"]) for e in config.get("call_types") or []
        }
        self._http, self._auth, self._clock = http, auth, clock

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        """Every patient holding exactly this MRN; eCW lists no patients unfiltered, so None finds none."""
        if not mrn:
            return []
        found = await self._search("Patient", {"identifier": f"{self._mrn_system}|{mrn}"})
        patients = [self._patient(resource) for resource in found]
        return [p for p in patients if p is not None and p.mrn == mrn]

    async def list_users(self) -> list[directory.User]:
        found = await self._search("Practitioner", {"_count": "200"})
        return [
            directory.User(str(r["id"]), fhir.display_name(r) or str(r["id"]), "provider")
            for r in found
            if r.get("id")
        ]

    async def list_call_types(self) -> list[directory.CallType]:
        return [directory.CallType(code, display) for code, display in self._call_types.items()]

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            answer = await emr_http.send(
                self._http,
                self._auth,
                "POST",
                f"{self._base}/Encounter",
                write=True,
                json=self.encounter(request, patient, marker),
                headers={"content-type": FHIR_JSON, "accept": FHIR_JSON},
            )
        except outcomes.AdapterError as exc:  # the token endpoint refused us: nothing was written
            return exc.outcome
        if not isinstance(answer, httpx.Response):
            return answer
        if answer.status_code in (200, 201):
            return _created(answer)
        return _refusal(answer, request)

    def encounter(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> dict[str, Any]:
        """The telephone encounter as an R4 Encounter."""
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "identifier": [{"system": self._marker_system, "value": marker}],
            "status": "in-progress",
            "class": VIRTUAL,
            "type": [{"coding": [TELEPHONE], "text": "Telephone Encounter"}],
            "subject": {"reference": f"Patient/{patient.emr_patient_id}"},
            "participant": [
                _participant("PPRF", "primary performer", self._provider),
                _participant("PART", "Participant", request.assignee_user_id or "", text="Assigned to"),
            ],
            "period": {"start": self._clock().isoformat(timespec="seconds")},
            "location": [{"location": {"reference": f"Location/{self._location}"}}],
            "text": {"status": "additional", "div": _narrative(request.description)},
        }
        reason = self._reason(request)
        if reason:
            encounter["reasonCode"] = [reason]
        return encounter

    def _reason(self, request: tasks.TaskRequest) -> dict[str, Any]:
        reason: dict[str, Any] = {}
        call_type = request.phone_call_type_id
        if call_type:
            display = self._call_types.get(call_type, call_type)
            reason["coding"] = [{"system": self._call_type_system, "code": call_type, "display": display}]
        text = request.subject or (self._call_types.get(call_type, call_type) if call_type else None)
        if text:
            reason["text"] = text[:REASON_LIMIT]
        return reason

    async def find_task(self, marker: str) -> outcomes.Lookup:
        try:
            found = await self._search(
                "Encounter", {"identifier": f"{self._marker_system}|{marker}"}, strict=True
            )
        except outcomes.AdapterError as exc:
            if isinstance(exc.outcome, outcomes.RetryLater):
                return exc.outcome
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, exc.outcome.description)
        mine = [e for e in found if self._carries(e, marker)]
        if len(mine) != len(found):
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, "eClinicalWorks answered Encounters that do not carry our marker."
            )
        if len(mine) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"eClinicalWorks holds {len(mine)} Encounters with this marker."
            )
        return outcomes.Created(str(mine[0]["id"])) if mine else outcomes.Absent()

    def _carries(self, encounter: dict[str, Any], marker: str) -> bool:
        return bool(encounter.get("id")) and any(
            i.get("system") == self._marker_system and i.get("value") == marker
            for i in encounter.get("identifier") or []
        )

    async def _search(
        self, resource: str, params: dict[str, str], *, strict: bool = False
    ) -> list[dict[str, Any]]:
        headers = {"accept": FHIR_JSON, **({"prefer": "handling=strict"} if strict else {})}
        return await fhir.search(
            self._http, self._auth, f"{self._base}/{resource}", resource, params, headers
        )

    def _patient(self, resource: dict[str, Any]) -> directory.Patient | None:
        return fhir.patient_from(resource, self._mrn_system)


def _participant(code: str, display: str, practitioner: str, text: str | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {"coding": [{"system": PARTICIPATION, "code": code, "display": display}]}
    if text:
        role["text"] = text
    return {"type": [role], "individual": {"reference": f"Practitioner/{practitioner}"}}


def _narrative(text: str) -> str:
    body = html.escape(text).replace("\n", "<br/>")
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{body}</p></div>'


def _created(answer: httpx.Response) -> outcomes.Outcome:
    try:
        resource_id = answer.json().get("id")
    except (ValueError, AttributeError):
        resource_id = None
    if not resource_id:  # a server may answer with only a Location header
        parts = answer.headers.get("location", "").split("/_history")[0].rstrip("/").split("/")
        resource_id = parts[-1] if len(parts) >= 2 and parts[-2] == "Encounter" else None
    if not resource_id:
        return outcomes.Unknown(
            outcomes.OUTCOME_UNKNOWN, "eClinicalWorks accepted the Encounter but did not say its id."
        )
    return outcomes.Created(str(resource_id))


def _refusal(answer: httpx.Response, request: tasks.TaskRequest) -> outcomes.Outcome:
    detail = fhir.diagnostics(answer)
    if answer.status_code in (400, 404, 409, 422):
        assignee = request.assignee_user_id or ""
        if assignee and f"Practitioner/{assignee}" in detail:
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND, f"eClinicalWorks does not know the assignee: {detail}"
            )
        if "Patient/" in detail:
            return outcomes.Rejected(
                outcomes.PATIENT_NOT_FOUND, f"eClinicalWorks does not know the patient: {detail}"
            )
    return emr_http.status_outcome(answer, write=True, detail=detail) or outcomes.Unknown(
        outcomes.OUTCOME_UNKNOWN, f"eClinicalWorks answered HTTP {answer.status_code}."
    )
