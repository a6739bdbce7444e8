"""Elation Health: a task is a message thread in the patient's chart, routed to a user or staff group.

- Create: `POST {base}/api/2.0/message_threads/` (JSON) with `patient`, `practice`,
  `document_date`, `chart_date`, `is_urgent`, `messages[{body, send_date, sender}]` and
  `members[{user | group, status}]` (only fields Elation's `MessageThread` declares: the sender is
  the message's); the assignee (and each notify_list entry) is a member with status
  `'Requiring Action'`, the sender one with `'Addressed'`. Answers 201 with the thread and its `id`.
  https://docs.elationhealth.com/reference/message-threads (OpenAPI: tests/contract/specs/elation/)
- Marker: threads keep no external id and Elation's metadata cannot be searched
  (https://docs.elationhealth.com/reference/metadata), so our task id ends the message body as a
  `Ref: <task id>` line; `find_task` lists the practice's threads by `document_date__gte` (from the
  time inside our task id) and reads the bodies.
- Patients: by default the MRN is Elation's patient chart ID (the numeric patient id shown in the
  chart, https://help.elationhealth.com/articles/elation-identifiers): `GET /api/2.0/patients/{id}/`.
  The REST patient search has no MRN filter, so practices whose MRNs live elsewhere use
  `mrn_source = fhir_identifier`: `GET {fhir_base_url}/Patient?identifier=<mrn_system>|<mrn>` on
  Elation's FHIR R4 API (https://elationfhir.readme.io/reference/uscdi-patient).
- Users: `GET /api/2.0/users/` (physicians and staff; thread members take this `id`; no practice
  filter in Elation's spec, so users of other practices are left out by their `practice`) and staff
  groups `GET /api/2.0/staff_groups/?practice=` (assignee written `group:<id>`). No call types.
- Auth: OAuth2 client credentials, form-encoded to `POST {base}/api/2.0/oauth2/token/`
  (https://help.elationhealth.com/articles/rest/overview/get-token). Rate limits: not documented.
- Errors: 400 with `{"field": ["message"]}` (Django REST framework); a `patient` error means the
  patient is unknown, a `members` error an unknown user or group; 401/403 = credentials.
"""

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from emrtasks.domain import directory, ids, outcomes, rules, tasks
from emrtasks.emr import base, fhir
from emrtasks.emr import http as emr_http

NAME = "elation"
TITLE = "Elation Health (message thread)"
REQUIRING_ACTION = "Requiring Action"
ADDRESSED = "Addressed"
CHART_ID = "chart_id"
FHIR_IDENTIFIER = "fhir_identifier"
MARKER_PREFIX = "Ref: "
GROUP_PREFIX = "group:"

RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=4000, target="messages[0].body"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="patient (Elation patient id by MRN)"),
        rules.FieldRule("subject", False, max_length=255, target="messages[0].body (first line)"),
        rules.FieldRule(
            "assignee_user_id",
            True,
            max_length=64,
            target="members[] (user, or group:<id>) with status 'Requiring Action'",
        ),
        rules.FieldRule(
            "notify_list",
            False,
            max_length=64,
            max_items=10,
            target="members[] (user, or group:<id>) with status 'Requiring Action'",
        ),
    ),
    assignee_identified_by="Elation user id (GET /api/2.0/users/), or group:<staff group id>",
    patient_identified_by="Elation patient chart ID, or a FHIR Patient.identifier (mrn_source)",
    notes=(
        "The task is a message thread in the patient's chart; subject and description form its message.",
        "Elation has no FYI-only thread member: notify_list members also get 'Requiring Action'.",
        "Our task id ends the message as a 'Ref: <task id>' line, so a lost reply can be looked up.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None  # Elation documents no rate limit

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting(
        "base_url", "Elation API host: https://sandbox.elationemr.com or https://app.elationemr.com"
    ),
    base.Setting("client_id", "OAuth2 client id issued by Elation"),
    base.Setting("client_secret", "OAuth2 client secret issued by Elation", secret=True),
    base.Setting("practice_id", "the numeric Elation practice id that owns the charts", kind=int),
    base.Setting(
        "sender_user_id", "the numeric Elation user id the threads are sent as (staff or API user)", kind=int
    ),
    base.Setting(
        "mrn_source",
        f"where the MRN is: {CHART_ID} (Elation's patient chart ID) or {FHIR_IDENTIFIER}",
        required=False,
        default=CHART_ID,
    ),
    base.Setting("fhir_base_url", "Elation FHIR R4 base URL (with mrn_source fhir_identifier)", False),
    base.Setting("mrn_system", "identifier system of the MRNs (with mrn_source fhir_identifier)", False),
    base.Setting("is_urgent", "mark every thread urgent", False, kind=bool, default=False),
    base.Setting("scope", "OAuth2 scope (Elation's default is apiv2)", False),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    source = config.get("mrn_source") or CHART_ID
    if source not in (CHART_ID, FHIR_IDENTIFIER):
        problems.append(f"mrn_source must be {CHART_ID} or {FHIR_IDENTIFIER}")
    if source == FHIR_IDENTIFIER:
        problems += [
            f"{name} is needed with mrn_source {FHIR_IDENTIFIER}"
            for name in ("fhir_base_url", "mrn_system")
            if not config.get(name)
        ]
    return problems


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "ElationAdapter":
    base.http_of(deps, NAME)
    return ElationAdapter(config, deps)


class ElationAdapter:
    def __init__(self, config: Mapping[str, Any], deps: base.AdapterDeps) -> None:
        self.rules = RULES
        self._http = base.http_of(deps, NAME)
        self._deps = deps
        self._api = f"{str(config['base_url']).rstrip('/')}/api/2.0"
        self._practice = int(config["practice_id"])
        self._sender = int(config["sender_user_id"])
        self._source = str(config.get("mrn_source") or CHART_ID)
        self._fhir = str(config.get("fhir_base_url") or "").rstrip("/")
        self._mrn_system = str(config.get("mrn_system") or "")
        self._urgent = bool(config.get("is_urgent", False))
        self._auth = emr_http.OAuth2ClientCredentials(
            self._http,
            f"{self._api}/oauth2/token/",
            str(config["client_id"]),
            str(config["client_secret"]),
            scope=config.get("scope"),
            basic_auth=False,
        )

    # --- directory ---
    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        if self._source == FHIR_IDENTIFIER:
            return await self._fhir_patients(mrn)
        if mrn is None:
            found = await self._read(f"{self._api}/patients/", {"practice": self._practice, "limit": 100})
            return [_patient(p, str(p["id"])) for p in found.get("results", []) if _is_live(p)]
        if not mrn.isdigit():
            return []  # a chart ID is numeric: nothing else can name an Elation patient
        found = await self._read(f"{self._api}/patients/{mrn}/", allow_missing=True)
        if not found or not _is_live(found) or found.get("caregiver_practice") not in (None, self._practice):
            return []
        return [_patient(found, mrn)]

    async def list_users(self) -> list[directory.User]:
        # Elation's spec gives /users/ no practice filter (staff groups have one): keep our practice's.
        users = await self._read_all(f"{self._api}/users/", {"limit": 100})
        groups = await self._read_all(
            f"{self._api}/staff_groups/", {"practice": self._practice, "limit": 100}
        )
        return [
            *(_user(u) for u in users if u.get("is_active", True) and _ours(u, self._practice)),
            *(
                directory.User(f"{GROUP_PREFIX}{g['id']}", str(g.get("name") or g["id"]), "group")
                for g in groups
                if not g.get("deleted_date")
            ),
        ]

    async def list_call_types(self) -> list[directory.CallType]:
        return []

    # --- tasks ---
    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        members = _members(request, self._sender)
        if members is None:
            return outcomes.Rejected(outcomes.USER_NOT_FOUND, _NOT_AN_ID.format(request.assignee_user_id))
        if not patient.emr_patient_id.isdigit():
            return outcomes.Rejected(
                outcomes.PATIENT_NOT_FOUND, f"Not an Elation patient: {patient.emr_patient_id}"
            )
        answer = await emr_http.send(
            self._http,
            self._auth,
            "POST",
            f"{self._api}/message_threads/",
            write=True,
            json=self.thread(request, patient, marker, members),
        )
        if not isinstance(answer, httpx.Response):
            return answer
        if answer.status_code in (200, 201):
            return outcomes.Created(str(answer.json()["id"]))
        return _create_failure(answer)

    def thread(
        self,
        request: tasks.TaskRequest,
        patient: directory.Patient,
        marker: str,
        members: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The message thread Elation stores for this task."""
        now = base.utc_now(self._deps).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "patient": int(patient.emr_patient_id),
            "practice": self._practice,
            "document_date": now,
            "chart_date": now,
            "is_urgent": self._urgent,
            "messages": [{"body": message_body(request, marker), "send_date": now, "sender": self._sender}],
            "members": members,
        }

    async def find_task(self, marker: str) -> outcomes.Lookup:
        since = _search_start(marker, base.utc_now(self._deps))
        params: dict[str, Any] = {
            "practice": self._practice,
            "document_date__gte": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "limit": 100,
        }
        try:
            threads = await self._read_all(f"{self._api}/message_threads/", params, must_finish=True)
        except emr_http.TooManyPages:
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _TOO_MANY)
        found = [str(t["id"]) for t in threads if not t.get("deleted_date") and _carries(t, marker)]
        if not found:
            return outcomes.Absent()
        if len(found) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"Elation holds {len(found)} threads with this marker: {found}."
            )
        return outcomes.Created(found[0])

    # --- calls ---
    async def _fhir_patients(self, mrn: str | None) -> list[directory.Patient]:
        params = {"identifier": f"{self._mrn_system}|{mrn}"} if mrn else {"_count": "100"}
        bundle = await self._read(f"{self._fhir}/Patient", params)
        resources = [e.get("resource") or {} for e in bundle.get("entry") or []]
        return [p for p in (_fhir_patient(r, self._mrn_system) for r in resources) if p is not None]

    async def _read(
        self, url: str, params: Mapping[str, Any] | None = None, *, allow_missing: bool = False
    ) -> dict[str, Any]:
        return await emr_http.read_json(self._http, self._auth, url, params, allow_missing=allow_missing)

    async def _read_all(
        self, url: str, params: Mapping[str, Any], *, must_finish: bool = False
    ) -> list[dict[str, Any]]:
        return await emr_http.read_pages(
            self._read, url, params, max_pages=_MAX_PAGES, must_finish=must_finish
        )


_MAX_PAGES = 50
_NOT_AN_ID = "Elation assignees and notify_list entries are user ids or group:<id> (assignee {!r})."
_TOO_MANY = "Too many Elation threads to search for this marker; check the chart before sending it again."
_LOOKBACK = timedelta(days=7)
# document_date may be kept as a date only: start the search a day before our task was minted.
_MARGIN = timedelta(days=1)


def message_body(request: tasks.TaskRequest, marker: str) -> str:
    parts = [request.subject, request.description, f"{MARKER_PREFIX}{marker}"]
    return "\n\n".join(p for p in parts if p)


def _carries(thread: Mapping[str, Any], marker: str) -> bool:
    wanted = f"{MARKER_PREFIX}{marker}"
    bodies = (str(m.get("body") or "") for m in thread.get("messages") or [])
    return any(line.strip() == wanted for body in bodies for line in body.splitlines())


def _search_start(marker: str, now: datetime) -> datetime:
    minted = ids.created_at(marker)
    return (minted if minted and minted <= now else now - _LOOKBACK) - _MARGIN


def parse_assignee(value: str) -> dict[str, int] | None:
    """A thread member's target: `123` is a user, `group:456` a staff group; None if neither."""
    kind, number = (
        ("group", value[len(GROUP_PREFIX) :]) if value.startswith(GROUP_PREFIX) else ("user", value)
    )
    return {kind: int(number)} if number.isdigit() else None


def _members(request: tasks.TaskRequest, sender: int) -> list[dict[str, Any]] | None:
    targets = [parse_assignee(v) for v in (request.assignee_user_id or "", *request.notify_list)]
    if any(t is None for t in targets):
        return None
    members: list[dict[str, Any]] = []
    for target in targets:
        if target is not None and {**target, "status": REQUIRING_ACTION} not in members:
            members.append({**target, "status": REQUIRING_ACTION})
    if not any(m.get("user") == sender for m in members):
        members.append({"user": sender, "status": ADDRESSED})
    return members


def _create_failure(response: httpx.Response) -> outcomes.Outcome:
    detail = _detail(response)
    if response.status_code == 400:
        fields = emr_http.error_fields(response)
        if "patient" in fields:
            return outcomes.Rejected(
                outcomes.PATIENT_NOT_FOUND, f"Elation does not know the patient: {detail}"
            )
        if "members" in fields:
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND,
                f"Elation does not know the assignee or a notify_list entry: {detail}",
            )
    if response.status_code == 404:
        return outcomes.Rejected(outcomes.EMR_REJECTED, f"Elation has no such practice or endpoint: {detail}")
    outcome = emr_http.status_outcome(response, write=True, detail=detail)
    return outcome or outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"Unexpected answer from Elation: {detail}")


def _detail(response: httpx.Response) -> str:
    return response.text[:300] if response.status_code >= 400 else ""


def _ours(user: Mapping[str, Any], practice: int) -> bool:
    return user.get("practice") in (None, practice)


def _is_live(patient: Mapping[str, Any]) -> bool:
    return not patient.get("deleted_date") and not patient.get("merged_into_chart")


def _patient(found: Mapping[str, Any], mrn: str) -> directory.Patient:
    phones = found.get("phones") or []
    return directory.Patient(
        emr_patient_id=str(found["id"]),
        mrn=mrn,
        first_name=str(found.get("first_name") or ""),
        last_name=str(found.get("last_name") or ""),
        dob=str(found.get("dob") or ""),
        sex=_sex(found.get("sex")),
        phone=str(phones[0].get("phone") or "") if phones else "",
    )


def _fhir_patient(resource: Mapping[str, Any], system: str) -> directory.Patient | None:
    found = fhir.patient_from(dict(resource), system)
    return dataclasses.replace(found, sex=_sex(resource.get("gender"))) if found else None


def _user(found: Mapping[str, Any]) -> directory.User:
    name = " ".join(str(found.get(k) or "") for k in ("first_name", "last_name")).strip()
    kind = "provider" if found.get("user_type") == "physician" else "staff"
    return directory.User(str(found["id"]), name or str(found["id"]), kind)


def _sex(value: Any) -> str:
    return {"female": "F", "male": "M"}.get(str(value or "").lower(), "U")
