"""OpenEMR: a patient message (a `pnotes` row) sent to a user, through OpenEMR's Standard REST API.

- `POST {base_url}/apis/{site}/api/patient/:pid/message`, a JSON body with `body`, `groupname`
  ("Default"), `from` and `to` (usernames), `title` (an option of the list `note_type`) and
  `message_status` (an option of the list `message_status`, e.g. "New"). All six are required
  (lengths: body 2-65535, message_status 2-20, the others 2-255); a missing one is a 400 naming it.
  Success is 201 `{"mid": <id>}` (MessageRestController; OpenEMR's swagger shows 200 with the standard
  envelope, which is read too). OpenEMR does not check that `to` or the pid exist, and has no route
  to list or search messages, so a message cannot be found again by our marker.
  https://github.com/openemr/openemr/blob/master/API_README.md ,
  https://github.com/openemr/openemr/blob/master/src/RestControllers/MessageRestController.php ,
  https://github.com/openemr/openemr/blob/master/src/Services/MessageService.php
- Auth: OAuth2 at `{base_url}/oauth2/{site}/token`. Client credentials is only for `system/*`
  scopes with a signed JWT (bulk FHIR), so we use the password grant (`user_role=users`; enabled in
  Administration > Config > Connectors) with `offline_access`, and the refresh token it returns
  (rotated on each use; 3 months) to renew the one-hour access token.
  https://github.com/openemr/openemr/blob/master/Documentation/api/AUTHENTICATION.md
- Patients: the Standard API's patient search ignores `pubpid` (it keeps only its whitelisted
  fields), so the MRN (External ID, `pubpid`) is searched with FHIR `Patient?identifier=` (which
  matches `pubpid` or `ss`), and each candidate read with `GET /api/patient/:puuid` for its `pid` and
  `pubpid`, kept only on an exact `pubpid` match.
  https://github.com/openemr/openemr/blob/master/Documentation/api/STANDARD_API.md ,
  https://github.com/openemr/openemr/blob/master/Documentation/api/FHIR_API.md
- Users: `GET /api/user` (ACL admin/users) lists every row of `users` but never its `username` nor
  `authorized` (UserService::search selects them only when its sensitive fields are toggled, which
  UserRestController never does), so each active row's own record is read with `GET /api/user/:uuid`
  (UserService::getUserByUUID: `SELECT *`), which has both. Rows without a username (address-book
  entries) and OpenEMR's API system user `oe-system` are not recipients.
  https://github.com/openemr/openemr/blob/master/src/Services/UserService.php ,
  https://github.com/openemr/openemr/blob/master/src/RestControllers/UserRestController.php
- Note types: `GET /api/list/note_type` (ACL lists/default): the bare option rows, or 404 with a
  `null` body when the list has none (ListRestController::getOptions).
- Errors: 401 bad token; 403 scope or ACL; 400 validation (`{"field": {"Rule::CODE": "text"}}`);
  404 when the message could not be stored. No rate limit is documented.
"""

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, http

NAME = "openemr"
TITLE = "OpenEMR (patient message)"
DEFAULT_SCOPE = (
    "openid offline_access api:oemr api:fhir user/Patient.read user/patient.read user/user.read "
    "user/list.read user/message.write"
)
USERS_SECONDS = 300.0
"""How long the user list that checks recipients is trusted (OpenEMR accepts any `to`)."""
FHIR_PAGES = 5
USER_READS_AT_ONCE = 4
"""How many users' own records are read at once when the user list is refreshed."""
SYSTEM_USERNAME = "oe-system"
"""OpenEMR's API system user (src/Services/UserService.php, SYSTEM_USER_USERNAME): a login, not a person."""

RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=60_000, target="message body (pnotes.body)"),
        rules.FieldRule(
            "patient_mrn", True, max_length=255, target="the :pid of the URL (patient found by pubpid)"
        ),
        rules.FieldRule("subject", False, max_length=255, target="message body (first line)"),
        rules.FieldRule(
            "assignee_user_id", True, max_length=255, target="to (a username; pnotes.assigned_to)"
        ),
        rules.FieldRule(
            "phone_call_type_id", False, max_length=255, target="title (an option of the list note_type)"
        ),
    ),
    assignee_identified_by="OpenEMR username (GET /api/user, then each user's own record)",
    patient_identified_by="External ID (patient_data.pubpid), resolved to the internal pid",
    finds_by_marker=False,
    notes=(
        "A patient message has no subject line: the subject becomes the first line of the body.",
        "The phone call type is the message's note type (list note_type); without one, the "
        "connection's note_type setting is used.",
        "A message has a single recipient, so notify_list is refused.",
        "OpenEMR cannot list or search messages: a create whose reply is lost ends unknown. Our task id "
        "is written on the last line of the body ([emrtasks task_...]) so a person can find it.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting("base_url", "the OpenEMR site address, e.g. https://openemr.example.com"),
    base.Setting("site", "the OpenEMR site name in the API paths", default="default"),
    base.Setting("client_id", "OAuth2 client id of the registered API client"),
    base.Setting("client_secret", "OAuth2 client secret (confidential clients)", False, secret=True),
    base.Setting("username", "the OpenEMR user the integration logs in as (password grant)"),
    base.Setting("password", "that user's password", secret=True),
    base.Setting("scope", "OAuth2 scopes requested", default=DEFAULT_SCOPE),
    base.Setting("sender", "the message's `from` username; the login username if unset", False),
    base.Setting("note_type", "the message title when no phone call type is given", default="Other"),
    base.Setting("message_status", "the status of new messages (list message_status)", default="New"),
    base.Setting("groupname", "the message group", default="Default"),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    url = config.get("base_url")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        problems.append("base_url must start with https://")
    for name, low, high in (("note_type", 2, 255), ("message_status", 2, 20), ("groupname", 2, 255)):
        value = config.get(name)
        if isinstance(value, str) and not low <= len(value) <= high:
            problems.append(f"{name} must be {low} to {high} characters (OpenEMR's rule)")
    return problems


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "OpenEmrAdapter":
    return OpenEmrAdapter(base.with_defaults(SETTINGS, config), base.http_of(deps, NAME))


class PasswordLogin(http.OAuth2ClientCredentials):
    """OpenEMR's password grant, renewed with its (rotating) refresh token, and logged in again when
    the refresh token is refused. A subclass of the shared client-credentials token only so that
    `http.send` accepts it: that helper takes a closed union of auth kinds."""

    def __init__(self, client: httpx.AsyncClient, token_url: str, config: Mapping[str, Any]) -> None:
        secret = str(config.get("client_secret") or "")
        super().__init__(client, token_url, str(config["client_id"]), secret, basic_auth=False)
        self._client_form = {
            "client_id": str(config["client_id"]),
            **({"client_secret": secret} if secret else {}),
        }
        self._login = {
            "grant_type": "password",
            **self._client_form,
            "scope": str(config["scope"]),
            "user_role": "users",
            "username": str(config["username"]),
            "password": str(config["password"]),
        }
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0
        self._renewing = asyncio.Lock()  # a refresh token is good once: renew one at a time

    async def header(self) -> dict[str, str]:
        async with self._renewing:
            if self._access is None or self._expires_at <= time.monotonic():
                await self._renew()
            return {"authorization": f"Bearer {self._access}"}

    def forget(self) -> None:
        self._access = None

    async def _renew(self) -> None:
        if self._refresh is not None:
            refresh = {"grant_type": "refresh_token", **self._client_form, "refresh_token": self._refresh}
            self._refresh = None  # used once: OpenEMR issues a new one
            if await self._grant(refresh):
                return
        if not await self._grant(self._login):
            raise outcomes.AdapterError(
                outcomes.Rejected(outcomes.LOGIN_REQUIRED, "OpenEMR refused the connection's login.")
            )

    async def _grant(self, form: dict[str, str]) -> bool:
        """One token request; False when OpenEMR refuses the grant (400, 401 or 403)."""
        try:
            response = await self._http.post(self._url, data=form)
        except httpx.HTTPError as exc:
            unreachable = f"OpenEMR's token endpoint could not be reached ({type(exc).__name__})."
            raise outcomes.AdapterError(outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, unreachable)) from exc
        if response.status_code in (400, 401, 403):
            return False
        http.raise_for_read(response, "token endpoint")
        token = http.token_from(response)
        body = http.json_object(response)
        self._access = token.value
        self._refresh = str(body["refresh_token"]) if body.get("refresh_token") else None
        self._expires_at = token.expires_at
        return True


class OpenEmrAdapter:
    def __init__(self, config: Mapping[str, Any], client: httpx.AsyncClient) -> None:
        self.rules = RULES
        self._http = client
        root = str(config["base_url"]).rstrip("/")
        site = str(config.get("site") or "default")
        self._api = f"{root}/apis/{site}/api"
        self._fhir = f"{root}/apis/{site}/fhir"
        self._auth = PasswordLogin(client, f"{root}/oauth2/{site}/token", config)
        self._message = {
            "groupname": str(config["groupname"]),
            "from": str(config.get("sender") or config["username"]),
            "message_status": str(config["message_status"]),
        }
        self._note_type = str(config["note_type"])
        self._users: tuple[float, dict[str, directory.User]] | None = None

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        if mrn is None:
            return await self._all_patients()
        found = await self._patients_by_mrn(mrn)
        # A create always follows the search for its patient: refresh the recipients it checks
        # against now, in the read phase, so that the create's first call is the write itself.
        await self._known_users()
        return found

    async def list_users(self) -> list[directory.User]:
        """Active users by username. The list answer has no usernames, so each active row's own record
        (which has the whole `users` row) is read too, a few at a time."""
        listed = _data_list(await self._get(f"{self._api}/user"))
        uuids = [str(u["uuid"]) for u in listed if u.get("uuid") and _is_active(u)]
        reading = asyncio.Semaphore(USER_READS_AT_ONCE)

        async def record(user_uuid: str) -> dict[str, Any] | None:
            async with reading:
                return await self._user_record(user_uuid)

        records = await asyncio.gather(*(record(u) for u in uuids))
        return [_user(r) for r in records if r is not None and _is_login(r)]

    async def list_call_types(self) -> list[directory.CallType]:
        # ListRestController::getOptions answers a list with no options with 404 and a null body.
        answer = await self._get(f"{self._api}/list/note_type", missing_ok=True)
        return [
            directory.CallType(str(o["option_id"]), str(o.get("title") or o["option_id"]))
            for o in _data_list(answer)
            if o.get("option_id") and str(o.get("activity", "1")) != "0"
        ]

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            refusal = await self._check_recipient(request.assignee_user_id)
            if refusal is not None:
                return refusal
            url = f"{self._api}/patient/{patient.emr_patient_id}/message"
            sent = await http.send(
                self._http, self._auth, "POST", url, write=True, json=self.message(request, marker)
            )
        except outcomes.AdapterError as exc:
            return exc.outcome
        return sent if not isinstance(sent, httpx.Response) else _stored(sent)

    async def find_task(self, marker: str) -> outcomes.Lookup:
        return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, "OpenEMR cannot list or search messages.")

    def message(self, request: tasks.TaskRequest, marker: str) -> dict[str, str]:
        """The JSON body of POST .../message: the six fields OpenEMR requires."""
        parts = [request.subject, request.description, f"[emrtasks {marker}]"]
        return {
            "body": "\n\n".join(p for p in parts if p),
            **self._message,
            "to": request.assignee_user_id or "",
            "title": request.phone_call_type_id or self._note_type,
        }

    async def _check_recipient(self, username: str | None) -> outcomes.Rejected | None:
        if not username:
            return outcomes.Rejected(outcomes.EMR_REJECTED, "An OpenEMR message needs a recipient username.")
        if username in await self._known_users():
            return None
        return outcomes.Rejected(outcomes.USER_NOT_FOUND, f"OpenEMR has no active user named {username!r}.")

    async def _known_users(self) -> dict[str, directory.User]:
        if self._users is None or self._users[0] <= time.monotonic():
            users = {u.id: u for u in await self.list_users()}
            self._users = (time.monotonic() + USERS_SECONDS, users)
        return self._users[1]

    async def _patients_by_mrn(self, mrn: str) -> list[directory.Patient]:
        found = []
        for puuid in await self._fhir_patient_ids(mrn):
            record = await self._patient_record(puuid)
            if record is not None and str(record.get("pubpid") or "") == mrn:
                found.append(_patient(record))
        return found

    async def _fhir_patient_ids(self, mrn: str) -> list[str]:
        """Patient ids whose pubpid or ss is this MRN, following the Bundle's next links."""
        ids: list[str] = []
        url: str | None = f"{self._fhir}/Patient"
        params: dict[str, str] | None = {"identifier": mrn}
        for _page in range(FHIR_PAGES):
            if url is None:
                break
            bundle = await self._get(url, params)
            ids.extend(
                str(e["resource"]["id"])
                for e in bundle.get("entry") or []
                if (e.get("resource") or {}).get("resourceType") == "Patient" and e["resource"].get("id")
            )
            url = _next_page(bundle, self._fhir)
            params = None
        return list(dict.fromkeys(ids))

    async def _patient_record(self, puuid: str) -> dict[str, Any] | None:
        answer = await self._get(f"{self._api}/patient/{quote(puuid, safe='')}", missing_ok=True)
        return _record(answer)

    async def _user_record(self, user_uuid: str) -> dict[str, Any] | None:
        """The whole `users` row; None when it is gone since the list was read (404)."""
        answer = await self._get(f"{self._api}/user/{quote(user_uuid, safe='')}", missing_ok=True)
        return _record(answer)

    async def _all_patients(self) -> list[directory.Patient]:
        answer = await self._get(f"{self._api}/patient")
        return [_patient(r) for r in _data_list(answer)]

    async def _get(
        self, url: str, params: Mapping[str, str] | None = None, *, missing_ok: bool = False
    ) -> dict[str, Any]:
        sent = await http.send(self._http, self._auth, "GET", url, params=params)
        if isinstance(sent, outcomes.RetryLater):
            raise outcomes.AdapterError(sent)
        if not isinstance(sent, httpx.Response):  # only writes are ever unknown
            raise outcomes.AdapterError(outcomes.RetryLater(sent.code, sent.description))
        if missing_ok and sent.status_code in (400, 404):
            return {}  # an unknown or vanished uuid: OpenEMR answers 400 or 404
        http.raise_for_read(sent, _said(sent))
        found = http.json_body(sent)
        if url.startswith(self._fhir) and not (isinstance(found, dict) and found.get("resourceType")):
            raise base.BadAnswer(sent.status_code, "a FHIR answer that is not a resource")
        return found if isinstance(found, dict) else {"data": found}


def _stored(response: httpx.Response) -> outcomes.Outcome:
    said = _said(response)
    if response.status_code in (200, 201):
        mid = _message_id(_json(response))
        if mid:
            return outcomes.Created(mid)
        return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"OpenEMR answered without a message id: {said}")
    if response.status_code == 400:
        return outcomes.Rejected(outcomes.EMR_REJECTED, f"OpenEMR refused the message: {said}")
    if response.status_code == 404:  # the insert returned nothing: no row was written
        return outcomes.Rejected(
            outcomes.EMR_REJECTED,
            "OpenEMR did not store the message (404); is its Standard REST API enabled?",
        )
    general = http.status_outcome(response, write=True, detail=said)
    return general if general is not None else outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, said)


def _message_id(body: Mapping[str, Any]) -> str | None:
    """The stored message's id. MessageRestController answers 201 `{"mid": n}`; OpenEMR's API document
    shows 200 with the standard envelope, `{"validationErrors": [], "internalErrors": [], "data": ...}`:
    both are read."""
    data = body.get("data")
    for holder in (body, data if isinstance(data, dict) else {}):
        if holder.get("mid"):
            return str(holder["mid"])
    return None


def _patient(record: Mapping[str, Any]) -> directory.Patient:
    return directory.Patient(
        emr_patient_id=str(record.get("pid") or ""),
        mrn=str(record.get("pubpid") or ""),
        first_name=str(record.get("fname") or ""),
        last_name=str(record.get("lname") or ""),
        dob=str(record.get("DOB") or ""),
        sex=str(record.get("sex") or ""),
        phone=str(record.get("phone_cell") or record.get("phone_home") or ""),
    )


def _user(record: Mapping[str, Any]) -> directory.User:
    name = " ".join(str(record.get(k) or "") for k in ("fname", "lname")).strip()
    kind = "provider" if str(record.get("authorized") or "0") == "1" else "staff"
    return directory.User(str(record["username"]), name or str(record["username"]), kind)


def _is_active(record: Mapping[str, Any]) -> bool:
    return str(record.get("active", "1")) not in ("0", "false", "False")


def _is_login(record: Mapping[str, Any]) -> bool:
    """A user who can receive messages: has a username (address-book entries have none), is active,
    and is not OpenEMR's own API system user."""
    username = str(record.get("username") or "")
    return bool(username) and username != SYSTEM_USERNAME and _is_active(record)


def _record(answer: Mapping[str, Any]) -> dict[str, Any] | None:
    """The one record of a single-resource answer: `data` is the object (or, in older versions, a list)."""
    data = answer.get("data")
    if isinstance(data, list):
        data = data[0] if data else None
    return data if isinstance(data, dict) else None


def _next_page(bundle: Mapping[str, Any], fhir_base: str) -> str | None:
    """The Bundle's next link, followed only on the connection's own FHIR base."""
    links = [
        str(link.get("url") or "") for link in bundle.get("link") or [] if link.get("relation") == "next"
    ]
    return next((url for url in links if url.startswith(fhir_base)), None)


def _data_list(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    data = answer.get("data")
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _said(response: httpx.Response) -> str:
    body = _json(response)
    for key in ("error_description", "error", "validationErrors", "internalErrors"):
        if body.get(key):
            return str(body[key])[:500]
    return str(body)[:500] if body else ""
