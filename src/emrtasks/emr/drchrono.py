"""DrChrono: a task (`/api/tasks`) assigned to a user or user group and tied to the patient.

- Create: `POST {base}/api/tasks` (JSON) with `title` and `status` (required: a task status id from
  `/api/task_statuses`), `category` (a task category id: our phone_call_type_id), `assignee_user`
  or `assignee_group` ("Either `assignee_user` or `assignee_group` should be set") and
  `associated_items: [{type: "Patient", value: <patient id>}]`; answers 201 with the task. Then our
  description as a note: `POST {base}/api/task_notes` with `task` and `text` (both required), the
  only way DrChrono documents to write one: a task's nested `notes` are a verbose-only read field
  (`x-verbose-required`) whose items name their `task`, which does not exist before the create.
  https://app.drchrono.com/api-docs/ (Tasks, Task notes), schema in https://app.drchrono.com/openapi-schema
- Marker: tasks keep no external id and `/api/tasks` filters only by status, category, assignee and
  dates, so the title ends with `[<task id>]`, and so does the note; `find_task` lists tasks updated
  `since` the day our task id was minted and reads the titles, then the task's notes
  (`GET /api/task_notes?task=<id>`). A task without its note (the note call failed) is reported
  `Absent` and remembered, so the create that follows the lookup adds only the note.
- Patients: `GET /api/patients?chart_id=<mrn>` (DrChrono's chart id is the practice's MRN); users
  `GET /api/users`, user groups `GET /api/user_groups` (assignee written `group:<id>`), call types
  `GET /api/task_categories`. Lists page with `results` and an absolute `next` URL.
- Auth: OAuth2 authorization code (https://app.drchrono.com/api-docs/#section/Authorization): the
  connection holds the refresh token (and the access token, if fresh) from linking the account;
  on a 401 the adapter posts `grant_type=refresh_token` to `{base}/o/token/`, which returns a new
  access token (48 hours) and a new refresh token. Scopes: `tasks:read tasks:write patients:read
  user:read`.
- Limits: 500 requests per hour per API application (reset on the hour), shared by every practice
  that authorised it (`RATE_LIMIT`, kept in the database), and 10 per second; a 429 carries no
  Retry-After. No idempotency keys: a repeated POST creates a second task.
- Errors: 400 with `{"field": ["message"]}`: `assignee_user`/`assignee_group` = unknown assignee,
  `associated_items` = unknown patient; 401 = token expired or revoked; 403 = missing scope.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from emrtasks.domain import directory, ids, outcomes, rules, tasks
from emrtasks.emr import base
from emrtasks.emr import http as emr_http

NAME = "drchrono"
TITLE = "DrChrono (task)"
GROUP_PREFIX = "group:"
PATIENT_ITEM = "Patient"

RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=4000, target="task note text (POST /api/task_notes)"),
        rules.FieldRule(
            "patient_mrn", True, max_length=64, target="associated_items[{type: Patient}] (by chart_id)"
        ),
        rules.FieldRule("subject", False, max_length=200, target="title"),
        rules.FieldRule(
            "assignee_user_id", True, max_length=64, target="assignee_user, or assignee_group (group:<id>)"
        ),
        rules.FieldRule("phone_call_type_id", False, max_length=32, target="category (task category id)"),
    ),
    assignee_identified_by="DrChrono user id (GET /api/users), or group:<user group id>",
    patient_identified_by="DrChrono chart_id",
    notes=(
        "subject becomes the task title (the start of the description when absent); the title ends "
        "with [<task id>] so a lost reply can be looked up.",
        "phone_call_type_id is a DrChrono task category id (GET /v1/phone-call-types lists them).",
        "DrChrono tasks have one assignee: notify_list is not supported.",
        "The description becomes the task's note (POST /api/task_notes), written right after the task.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 2
# 500 calls an hour per API application, reset on the hour, whichever practice they are for
# (https://app.drchrono.com/api-docs/, "Rate limiting"): one budget per client_id.
RATE_LIMIT: base.RateLimit | None = base.RateLimit(500, 3600, scope="client_id")

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting(
        "base_url", "DrChrono API host", default="https://app.drchrono.com", held_by=base.DEPLOYMENT
    ),
    base.Setting("client_id", "OAuth2 client id of the API application", held_by=base.DEPLOYMENT),
    base.Setting(
        "client_secret", "OAuth2 client secret of the API application", secret=True, held_by=base.DEPLOYMENT
    ),
    base.Setting(
        "refresh_token", "refresh token from linking the practice's account", secret=True, held_by=base.OAUTH
    ),
    base.Setting(
        "access_token",
        "access token from linking (renewed when refused)",
        False,
        secret=True,
        held_by=base.OAUTH,
    ),
    base.Setting(
        "task_status_id", "status of new tasks: an open status id from /api/task_statuses", kind=int
    ),
    base.Setting("default_category_id", "task category when no phone_call_type_id is given", False, kind=int),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    return base.check_config(SETTINGS, config)


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "DrChronoAdapter":
    base.http_of(deps, NAME)
    return DrChronoAdapter(connection.id, config, deps)


def _saver(connection_id: str, deps: base.AdapterDeps) -> Callable[[dict[str, Any]], Awaitable[None]] | None:
    save = deps.save_credentials
    if save is None:
        return None

    async def store(tokens: dict[str, Any]) -> None:
        await save(connection_id, tokens)

    return store


class RefreshingToken:
    """OAuth2 authorization-code tokens: the access token is used until refused or expired, then the
    refresh token buys a new pair (RFC 6749 §6). One refresh at a time: DrChrono rotates the refresh
    token, so two refreshes racing with the same one would make the second look like a revoked login."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None = None,
        on_rotate: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self._http = http
        self._on_rotate = on_rotate
        self._url = token_url
        self._client = {"client_id": client_id, "client_secret": client_secret}
        self._refresh_token = refresh_token
        self._access = access_token or None
        self._expires_at = float("inf")
        self._lock = asyncio.Lock()

    async def header(self) -> dict[str, str]:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._refresh()
        return {"authorization": f"Bearer {self._access}"}

    def forget(self) -> None:
        self._access = None

    def credentials(self) -> dict[str, str | None]:
        """The tokens now in use; a refresh replaces both, so whoever keeps the connection's secrets
        should store these again."""
        return {"access_token": self._access, "refresh_token": self._refresh_token}

    def _fresh(self) -> bool:
        return self._access is not None and self._expires_at > time.monotonic()

    async def _refresh(self) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token, **self._client}
        try:
            response = await self._http.post(self._url, data=form)
        except httpx.HTTPError as exc:
            unreachable = f"DrChrono's token endpoint could not be reached ({type(exc).__name__})."
            raise outcomes.AdapterError(outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, unreachable)) from exc
        if response.status_code in (400, 401, 403):
            raise outcomes.AdapterError(
                outcomes.Rejected(
                    outcomes.LOGIN_REQUIRED,
                    f"DrChrono refused the connection's refresh token: {response.text[:200]}",
                )
            )
        emr_http.raise_for_read(response)
        body = response.json()
        lifetime = float(body.get("expires_in", 172800))
        self._access = str(body["access_token"])
        self._refresh_token = str(body.get("refresh_token") or self._refresh_token)
        self._expires_at = time.monotonic() + max(lifetime - 60, lifetime / 2)
        if self._on_rotate is not None:
            await self._on_rotate(dict(self.credentials()))


class DrChronoAdapter:
    def __init__(self, connection_id: str, config: Mapping[str, Any], deps: base.AdapterDeps) -> None:
        self.rules = RULES
        self._http = base.http_of(deps, NAME)
        self._deps = deps
        host = str(config["base_url"]).rstrip("/")
        self._api = f"{host}/api"
        self._status = int(config["task_status_id"])
        default_category = config.get("default_category_id")
        self._default_category = int(default_category) if default_category is not None else None
        self.token = RefreshingToken(
            self._http,
            f"{host}/o/token/",
            str(config["client_id"]),
            str(config["client_secret"]),
            str(config["refresh_token"]),
            config.get("access_token"),
            on_rotate=_saver(connection_id, deps),
        )
        self._auth: emr_http.Auth = self.token
        self._unnoted: dict[str, int] = {}
        """Markers whose task `find_task` found without its note, by DrChrono task id."""

    # --- directory ---
    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        params: dict[str, Any] = {"chart_id": mrn} if mrn else {"page_size": 100}
        found = await self._read(f"{self._api}/patients", params)
        return [_patient(p) for p in found.get("results") or [] if mrn is None or p.get("chart_id") == mrn]

    async def list_users(self) -> list[directory.User]:
        users = await self._read_all(f"{self._api}/users", {"page_size": 250})
        groups = await self._read_all(f"{self._api}/user_groups", {"page_size": 250})
        return [
            *(_user(u) for u in users),
            *(
                directory.User(f"{GROUP_PREFIX}{g['id']}", str(g.get("name") or g["id"]), "group")
                for g in groups
            ),
        ]

    async def list_call_types(self) -> list[directory.CallType]:
        found = await self._read_all(f"{self._api}/task_categories", {"page_size": 250})
        return [
            directory.CallType(str(c["id"]), str(c.get("name") or c["id"]))
            for c in found
            if not c.get("archived")
        ]

    # --- tasks ---
    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        assignee = parse_assignee(request.assignee_user_id or "")
        if assignee is None:
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND,
                f"DrChrono assignees are user ids or group:<id>, not {request.assignee_user_id!r}.",
            )
        if not patient.emr_patient_id.isdigit():
            return outcomes.Rejected(
                outcomes.PATIENT_NOT_FOUND, f"Not a DrChrono patient: {patient.emr_patient_id}"
            )
        category = request.phone_call_type_id
        if category is not None and not category.isdigit():
            return outcomes.Rejected(outcomes.EMR_REJECTED, f"Not a DrChrono task category id: {category!r}.")
        unnoted = self._unnoted.pop(marker, None)
        if unnoted is not None:  # the lookup found our task without its note: add only the note
            return await self._add_note(unnoted, request, marker)
        body = self.task(request, patient, marker, assignee)
        answer = await emr_http.send(
            self._http, self._auth, "POST", f"{self._api}/tasks", write=True, json=body
        )
        if not isinstance(answer, httpx.Response):
            return answer
        if answer.status_code not in (200, 201):
            return _create_failure(answer)
        return await self._add_note(int(answer.json()["id"]), request, marker)

    async def _add_note(self, task_id: int, request: tasks.TaskRequest, marker: str) -> outcomes.Outcome:
        """The description as the task's note. The task exists now, so any failure is `Unknown`: the
        job's retry looks the marker up, finds the task without its note, and adds only the note."""
        body = {"task": task_id, "text": note_text(request, marker)}
        answer = await emr_http.send(
            self._http, self._auth, "POST", f"{self._api}/task_notes", write=True, json=body
        )
        if isinstance(answer, httpx.Response) and answer.status_code in (200, 201):
            return outcomes.Created(str(task_id))
        said = (
            f"HTTP {answer.status_code}: {answer.text[:200]}"
            if isinstance(answer, httpx.Response)
            else answer.description
        )
        return outcomes.Unknown(
            outcomes.OUTCOME_UNKNOWN,
            f"DrChrono created task {task_id} but not its note ({said}); a retry adds the note.",
        )

    def task(
        self,
        request: tasks.TaskRequest,
        patient: directory.Patient,
        marker: str,
        assignee: dict[str, str | int],
    ) -> dict[str, Any]:
        """The DrChrono task for this request."""
        category = int(request.phone_call_type_id) if request.phone_call_type_id else self._default_category
        return {
            "title": task_title(request, marker),
            "status": self._status,
            **({"category": category} if category is not None else {}),
            **assignee,
            "associated_items": [{"type": PATIENT_ITEM, "value": int(patient.emr_patient_id)}],
        }

    async def find_task(self, marker: str) -> outcomes.Lookup:
        since = _search_start(marker, base.utc_now(self._deps))
        params = {"since": since.date().isoformat(), "page_size": 250}
        try:
            found_tasks = await self._read_all(f"{self._api}/tasks", params, must_finish=True)
        except emr_http.TooManyPages:
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _TOO_MANY)
        suffix = f"[{marker}]"
        found = [str(t["id"]) for t in found_tasks if str(t.get("title") or "").endswith(suffix)]
        if not found:
            return outcomes.Absent()
        if len(found) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"DrChrono holds {len(found)} tasks with this marker: {found}."
            )
        notes = await self._read_all(f"{self._api}/task_notes", {"task": found[0], "page_size": 250})
        if any(str(n.get("text") or "").rstrip().endswith(suffix) for n in notes):
            return outcomes.Created(found[0])
        # Written, but its note was not: the create that follows an Absent adds only the note.
        self._unnoted[marker] = int(found[0])
        return outcomes.Absent()

    # --- calls ---
    async def _read(self, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await emr_http.read_json(self._http, self._auth, url, params)

    async def _read_all(
        self, url: str, params: Mapping[str, Any], *, must_finish: bool = False
    ) -> list[dict[str, Any]]:
        return await emr_http.read_pages(
            self._read, url, params, max_pages=_MAX_PAGES, must_finish=must_finish
        )


_MAX_PAGES = 40
_TOO_MANY = "Too many DrChrono tasks to search for this marker; check the EMR before sending it again."
_LOOKBACK = timedelta(days=7)
# `since` compares DrChrono's own clock and time zone: start the search a day before our task was minted.
_MARGIN = timedelta(days=1)
_TITLE_FROM_DESCRIPTION = 80


def task_title(request: tasks.TaskRequest, marker: str) -> str:
    text = request.subject or request.description.strip().splitlines()[0][:_TITLE_FROM_DESCRIPTION]
    return f"{text} [{marker}]"


def note_text(request: tasks.TaskRequest, marker: str) -> str:
    """The description, ending with the marker as the title does, so a lookup knows the note."""
    return f"{request.description}\n\n[{marker}]"


def parse_assignee(value: str) -> dict[str, str | int] | None:
    """`123` is `assignee_user` (a string in DrChrono's schema), `group:45` is `assignee_group`."""
    if value.startswith(GROUP_PREFIX) and value[len(GROUP_PREFIX) :].isdigit():
        return {"assignee_group": int(value[len(GROUP_PREFIX) :])}
    return {"assignee_user": value} if value.isdigit() else None


def _search_start(marker: str, now: datetime) -> datetime:
    minted = ids.created_at(marker)
    return (minted if minted and minted <= now else now - _LOOKBACK) - _MARGIN


def _create_failure(response: httpx.Response) -> outcomes.Outcome:
    detail = response.text[:300]
    fields = emr_http.error_fields(response) if response.status_code == 400 else set()
    if fields & {"assignee_user", "assignee_group"}:
        return outcomes.Rejected(outcomes.USER_NOT_FOUND, f"DrChrono does not know the assignee: {detail}")
    if "associated_items" in fields:
        return outcomes.Rejected(outcomes.PATIENT_NOT_FOUND, f"DrChrono does not know the patient: {detail}")
    outcome = emr_http.status_outcome(response, write=True, detail=detail)
    return outcome or outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"Unexpected answer from DrChrono: {detail}")


def _patient(found: Mapping[str, Any]) -> directory.Patient:
    return directory.Patient(
        emr_patient_id=str(found["id"]),
        mrn=str(found.get("chart_id") or ""),
        first_name=str(found.get("first_name") or ""),
        last_name=str(found.get("last_name") or ""),
        dob=str(found.get("date_of_birth") or ""),
        sex={"female": "F", "male": "M"}.get(str(found.get("gender") or "").lower(), "U"),
        phone=str(found.get("cell_phone") or found.get("home_phone") or ""),
    )


def _user(found: Mapping[str, Any]) -> directory.User:
    kind = "provider" if found.get("is_doctor") else "staff"
    return directory.User(str(found["id"]), str(found.get("username") or found["id"]), kind)


# Linking a practice (Link): authorization code with PKCE; https://app.drchrono.com/api-docs/#section/Authorization
OAUTH = base.OAuthEndpoints(
    authorize_url="https://drchrono.com/o/authorize/",
    token_url="{base_url}/o/token/",  # noqa: S106 - a URL template
    scopes=("tasks:read", "tasks:write", "patients:read", "user:read"),
    token_fields={"access_token": "access_token", "refresh_token": "refresh_token"},
)
