"""GNU Health (5.0, on Tryton 7.0): a follow-up appointment assigned to a health professional, written
through Tryton's JSON-RPC.

- JSON-RPC: `POST {url}/{database}/` with `{"id", "method", "params"}`. `common.db.login` with
  `[login, {"password": ...}, language]` gives `[user id, session key]`; later calls carry
  `Authorization: Session base64(login:uid:key)`. Model calls are `model.<model>.<method>` with the
  method's arguments and a context last. https://docs.tryton.org/7.0/server/topics/rpc.html ,
  https://gitlab.com/tryton/trytond/-/blob/7.0/trytond/protocols/dispatcher.py
- Answers: a refused call is HTTP 200 with an `error` member (its transaction rolled back: nothing was
  written); a refused login, an expired session (idle 5 minutes by default) and an unknown session are
  401; an unknown database 404; a method not open to RPC 403. Failed logins slow every later login of
  that name and more than 5 in 5 minutes get 429, so a refused login is never tried again.
  https://docs.tryton.org/7.0/server/topics/configuration.html#session
- Patients: `gnuhealth.patient` (a `party.party` with `is_patient`). The MRN is the PUID (`party.ref`,
  unique) or an alternative ID (`party.alternative_ids.code`, e.g. a medical record number, not unique):
  GNU Health's own patient search matches both, so two people can answer one identifier.
  https://docs.gnuhealth.org/his/
- Users: `gnuhealth.healthprofessional` whose party is linked to a login (`party.internal_user`); a
  task's assignee is named by that login.
- Task: `gnuhealth.appointment` with `state` "confirmed" (which also numbers it "APP YYYY/N"),
  `healthprof`, `visit_type`, `urgency` and `comments`: all sent, as GNU Health 5.0's `create` reads
  `state` before its defaults apply. The subject, description and our marker go in `comments`;
  nothing makes a marker unique, so it is searched before every create. `notify_list`: one `ir.note`
  on the appointment per professional, naming them (a Tryton note has no addressee).
"""

import base64
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, http

NAME = "gnuhealth"
TITLE = "GNU Health (follow-up appointment)"
MARKER_FORMAT = "[emrtasks {marker}]"
VISIT_TYPES = ("new", "followup", "well_child", "well_woman", "well_man")
"""`gnuhealth.appointment.visit_type` in GNU Health 5.0 (read live with `fields_get`)."""
URGENCIES = ("a", "b", "c")
"""Normal, Urgent, Medical Emergency."""
LOGIN_THROTTLED_SECONDS = 300.0

RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=60_000, target="gnuhealth.appointment.comments"),
        rules.FieldRule(
            "patient_mrn", True, max_length=255, target="patient (found by PUID or alternative ID)"
        ),
        rules.FieldRule("subject", False, max_length=255, target="comments (first line)"),
        rules.FieldRule(
            "assignee_user_id", True, max_length=255, target="healthprof (the professional's login)"
        ),
        rules.FieldRule("phone_call_type_id", False, max_length=32, target="visit_type"),
        rules.FieldRule(
            "notify_list", False, max_length=255, max_items=10, target="ir.note on the appointment, each"
        ),
    ),
    assignee_identified_by="the health professional's GNU Health login (res.user.login)",
    patient_identified_by="PUID (party.ref), or an alternative ID such as a medical record number",
    finds_by_marker=True,
    notes=(
        "The task is a confirmed follow-up appointment for the patient, assigned to the professional; "
        "its subject, description and our task id ([emrtasks task_...]) are the appointment's comments.",
        "The phone call type is the appointment's visit type (new, followup, ...); without one, the "
        "connection's visit_type setting is used.",
        "Each professional in notify_list gets a note on the appointment naming them.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting("url", "the address trytond serves, e.g. https://gnuhealth.example.org"),
    base.Setting("database", "the GNU Health database name"),
    base.Setting("username", "the GNU Health login the integration uses (a front-desk user, not admin)"),
    base.Setting("password", "that login's password", secret=True),
    base.Setting("visit_type", "the visit type when no phone call type is given", default="followup"),
    base.Setting("urgency", "the appointments' urgency: a (normal), b (urgent), c (emergency)", default="a"),
    base.Setting(
        "call_types",
        "the visit types offered as phone call types (all of GNU Health's if unset)",
        False,
        kind=list,
    ),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    url = config.get("url")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        problems.append("url must start with https://")
    if config.get("urgency") not in (None, *URGENCIES):
        problems.append("urgency must be a, b or c")
    listed = config.get("call_types")
    if isinstance(listed, list) and not all(isinstance(v, str) and v for v in listed):
        problems.append("call_types must be a list of visit types")
    return problems


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "GnuHealthAdapter":
    return GnuHealthAdapter(base.with_defaults(SETTINGS, config), base.http_of(deps, NAME))


def rpc_url(config: Mapping[str, Any]) -> str:
    return f"{str(config['url']).rstrip('/')}/{config['database']}/"


def marker_text(marker: str) -> str:
    return MARKER_FORMAT.format(marker=marker)


class SessionLogin:
    """A Tryton session: logged in on first use, again when a call answers 401 (the session expired),
    never again once GNU Health has refused the password."""

    def __init__(self, client: httpx.AsyncClient, url: str, username: str, password: str) -> None:
        self._http = client
        self._url = url
        self._username = username
        self._password = password
        self._header: str | None = None
        self._refused: str | None = None

    async def header(self) -> dict[str, str]:
        if self._refused is not None:
            raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, self._refused))
        if self._header is None:
            self._header = await self._login()
        return {"authorization": self._header}

    def forget(self) -> None:
        self._header = None

    async def _login(self) -> str:
        body = {
            "id": 0,
            "method": "common.db.login",
            "params": [self._username, {"password": self._password}, "en"],
        }
        try:
            answer = await self._http.post(self._url, json=body)
        except httpx.HTTPError as exc:
            unreachable = f"GNU Health could not be reached to log in ({type(exc).__name__})."
            raise outcomes.AdapterError(outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, unreachable)) from exc
        if answer.status_code in (401, 403, 404):
            self._refused = _login_refusal(answer.status_code)
            raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, self._refused))
        if answer.status_code == 429:
            raise outcomes.AdapterError(
                outcomes.RetryLater(
                    outcomes.EMR_RATE_LIMITED,
                    "GNU Health is slowing logins of this name after failed attempts.",
                    LOGIN_THROTTLED_SECONDS,
                )
            )
        http.raise_for_read(answer, "login")
        uid, key = http.json_object(answer)["result"][:2]
        token = base64.b64encode(f"{self._username}:{int(uid)}:{key}".encode()).decode()
        return f"Session {token}"


def _login_refusal(status: int) -> str:
    if status == 404:
        return "GNU Health has no database of the connection's name (HTTP 404)."
    return f"GNU Health refused the connection's login (HTTP {status}); it is not tried again."


class GnuHealthAdapter:
    def __init__(self, config: Mapping[str, Any], client: httpx.AsyncClient) -> None:
        self.rules = RULES
        self._http = client
        self._url = rpc_url(config)
        self._auth = SessionLogin(client, self._url, str(config["username"]), str(config["password"]))
        self._visit_type = str(config["visit_type"])
        self._urgency = str(config["urgency"])
        self._call_types: Sequence[str] | None = config.get("call_types")
        self._ids = itertools.count(1)

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        domain: list[Any] = (
            [] if mrn is None else ["OR", ("party.ref", "=", mrn), ("party.alternative_ids.code", "=", mrn)]
        )
        fields = ["party.ref", "party.name", "party.lastname", "party.dob", "party.gender"]
        found = await self._read("model.gnuhealth.patient.search_read", domain, 0, 1000, None, fields, {})
        return [_patient(record, mrn) for record in found]

    async def list_users(self) -> list[directory.User]:
        domain: list[Any] = [("party.internal_user", "!=", None), ("active", "=", True)]
        fields = ["party.internal_user.login", "party.rec_name"]
        found = await self._read(
            "model.gnuhealth.healthprofessional.search_read", domain, 0, None, None, fields, {}
        )
        return [_user(r) for r in found if _login_of(r)]

    async def list_call_types(self) -> list[directory.CallType]:
        described = await self._read("model.gnuhealth.appointment.fields_get", ["visit_type"], {})
        offered = [(str(v), str(t)) for v, t in described["visit_type"]["selection"] if v]
        wanted = set(self._call_types) if self._call_types else None
        return [directory.CallType(v, t) for v, t in offered if wanted is None or v in wanted]

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            written = await self._find(marker)
            if isinstance(written, outcomes.Created | outcomes.Unknown):
                return written  # written by an earlier attempt whose reply was lost: never twice
            refusal, professionals = await self._recipients(request)
            if refusal is not None:
                return refusal
            created = await self._write(self.appointment(request, patient, marker, professionals))
            if not isinstance(created, outcomes.Created):
                return created
            return await self._notify(created, request, professionals)
        except outcomes.AdapterError as exc:
            return exc.outcome

    async def find_task(self, marker: str) -> outcomes.Lookup:
        return await self._find(marker)

    def appointment(
        self,
        request: tasks.TaskRequest,
        patient: directory.Patient,
        marker: str,
        professionals: Mapping[str, int],
    ) -> dict[str, Any]:
        """The values of `gnuhealth.appointment.create`: every field GNU Health 5.0's create reads."""
        parts = [request.subject, request.description, marker_text(marker)]
        return {
            "patient": int(patient.emr_patient_id),
            "healthprof": professionals[request.assignee_user_id or ""],
            "state": "confirmed",
            "visit_type": request.phone_call_type_id or self._visit_type,
            "urgency": self._urgency,
            "comments": "\n\n".join(p for p in parts if p),
        }

    async def _find(self, marker: str) -> outcomes.Lookup:
        text = marker_text(marker)
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = await self._read(
            "model.gnuhealth.appointment.search_read",
            [("comments", "ilike", pattern)],
            0,
            10,
            None,
            ["comments"],
            {},
        )
        ids = [str(r["id"]) for r in found if text in str(r.get("comments") or "")]
        if not ids:
            return outcomes.Absent()
        if len(ids) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"GNU Health holds {len(ids)} appointments with this marker."
            )
        return outcomes.Created(ids[0])

    async def _recipients(
        self, request: tasks.TaskRequest
    ) -> tuple[outcomes.Rejected | None, dict[str, int]]:
        """The professionals' record ids by login, or why one of them cannot be given a task."""
        logins = [request.assignee_user_id or "", *request.notify_list]
        found = await self._professional_ids(logins)
        unknown = [login for login in dict.fromkeys(logins) if login not in found]
        if unknown:
            named = ", ".join(repr(u) for u in unknown)
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND,
                f"GNU Health has no active health professional with the login {named}.",
            ), {}
        return None, found

    async def _professional_ids(self, logins: list[str]) -> dict[str, int]:
        domain = [("party.internal_user.login", "in", logins), ("active", "=", True)]
        fields = ["party.internal_user.login"]
        found = await self._read(
            "model.gnuhealth.healthprofessional.search_read", domain, 0, None, None, fields, {}
        )
        return {_login_of(r): int(r["id"]) for r in found if _login_of(r)}

    async def _write(self, values: dict[str, Any]) -> outcomes.Outcome:
        answer = await self._send("model.gnuhealth.appointment.create", [[values], {}], write=True)
        if not isinstance(answer, httpx.Response):
            return answer
        refused = _refusal(answer, write=True)
        if refused is not None:
            return refused
        [record_id] = http.json_object(answer)["result"]
        return outcomes.Created(str(int(record_id)))

    async def _notify(
        self, created: outcomes.Created, request: tasks.TaskRequest, professionals: Mapping[str, int]
    ) -> outcomes.Outcome:
        """One note per professional to notify. The appointment is written: a note that fails leaves the
        task created without it (a retry would find the appointment by marker and stop there)."""
        if not request.notify_list:
            return created
        resource = f"gnuhealth.appointment,{created.emr_task_id}"
        about = request.subject or "a follow-up appointment"
        notes = [
            {"resource": resource, "message": f"For the attention of {login}: {about}"}
            for login in dict.fromkeys(request.notify_list)
            if login in professionals
        ]
        await self._send("model.ir.note.create", [notes, {}], write=True)
        return created

    async def _read(self, method: str, *params: Any) -> Any:
        answer = await self._send(method, list(params), write=False)
        if not isinstance(answer, httpx.Response):
            raise outcomes.AdapterError(outcomes.RetryLater(answer.code, answer.description))
        refused = _refusal(answer, write=False)
        if isinstance(refused, outcomes.Rejected | outcomes.RetryLater):
            raise outcomes.AdapterError(refused)
        return http.json_object(answer)["result"]

    async def _send(
        self, method: str, params: list[Any], *, write: bool
    ) -> httpx.Response | outcomes.RetryLater | outcomes.Unknown:
        body = {"id": next(self._ids), "method": method, "params": params}
        return await http.send(self._http, self._auth, "POST", self._url, write=write, json=body)


def _refusal(answer: httpx.Response, *, write: bool) -> outcomes.Outcome | None:
    """What an answer other than a result means; None for a result."""
    if answer.status_code == 403:
        return outcomes.Rejected(
            outcomes.EMR_REJECTED, "GNU Health does not open this call to its RPC (HTTP 403)."
        )
    general = http.status_outcome(answer, write=write)
    if general is not None:
        return general
    body = http.json_object(answer)
    if body.get("error"):
        return outcomes.Rejected(
            outcomes.EMR_REJECTED, f"GNU Health refused the call: {_error_text(body['error'])}"
        )
    if "result" not in body:
        raise base.BadAnswer(answer.status_code, "a JSON-RPC answer without a result")
    return None


def _error_text(error: Any) -> str:
    """The error's message only: Tryton adds a traceback to unexpected errors, which is not for clients."""
    first = error[0] if isinstance(error, list) and error else error
    if isinstance(first, list) and first:
        first = first[0]
    return str(first)[:300]


def _user(record: Mapping[str, Any]) -> directory.User:
    login = _login_of(record)
    return directory.User(login, str((record.get("party.") or {}).get("rec_name") or login), "provider")


def _login_of(record: Mapping[str, Any]) -> str:
    user = (record.get("party.") or {}).get("internal_user.") or {}
    return str(user.get("login") or "")


def _patient(record: Mapping[str, Any], mrn: str | None) -> directory.Patient:
    party = record.get("party.") or {}
    puid = str(party.get("ref") or "")
    return directory.Patient(
        emr_patient_id=str(int(record["id"])),
        mrn=mrn if mrn is not None else puid,
        first_name=str(party.get("name") or ""),
        last_name=str(party.get("lastname") or ""),
        dob=_date(party.get("dob")),
        sex=str(party.get("gender") or ""),
        phone="",
    )


def _date(value: Any) -> str:
    """Tryton's JSON date (`{"__class__": "date", "year": ..}`) as YYYY-MM-DD."""
    if not isinstance(value, dict):
        return ""
    return f"{int(value['year']):04d}-{int(value['month']):02d}-{int(value['day']):02d}"
