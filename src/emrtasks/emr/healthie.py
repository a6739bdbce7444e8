"""Healthie: a Task created with the GraphQL mutation `createTask`, our task id kept in its `metadata`.

- One endpoint, `POST {base_url}/graphql` (production https://api.gethealthie.com, sandbox
  https://staging-api.gethealthie.com), JSON body `{operationName, query, variables}`.
  https://docs.gethealthie.com/guides/quick-start
- Auth: an API key tied to a Healthie user, sent as `Authorization: Basic <key>` (the raw key, not
  base64 user:password) with `AuthorizationSource: API`, and `AuthorizationShard: <id>` for sharded
  accounts. No refresh exists: a refused key means login_required.
  https://docs.gethealthie.com/guides/api-concepts/authentication
- Version: the `Healthie-GraphQL-API-Version` header (dates only); without it Healthie answers the
  2024-06-01 baseline with a warning until 2027-01-31, then refuses. Versions before 2026-07-01 are
  sunset on 2027-01-31. https://docs.gethealthie.com/guides/api-concepts/versioning . Our queries
  are checked against the 2026-01-01 schema; older versions page users/organizationMembers/tasks as
  plain lists, so check_config refuses them. `metadata` is in every version since 2026-03-06
  (https://docs.gethealthie.com/guides/api-concepts/changelog).
- `createTask(input: createTaskInput)`: `content`, `client_id` (the patient, a Healthie user id),
  `assignee_ids` (provider/staff user ids; none means the key's user), `priority` (0/1), `due_date`,
  `metadata` (a serialized JSON string, at most 2,000 characters). Returns `{task, messages}`.
  https://docs.gethealthie.com/reference/2026-01-01/input-objects/createtaskinput ,
  https://docs.gethealthie.com/guides/tasks
- Errors: validation failures come back with HTTP 200 as `messages: [{field, message}]` on the
  payload and a null `task`; other failures as GraphQL `errors[]` (without `data` when the request
  never ran, GraphQL spec 7.1.2), e.g. `TOO_MANY_REQUESTS` (no
  Retry-After is documented), complexity (max 2000) and depth (max 25) limits, and
  `UNSUPPORTED_API_VERSION`. Healthie publishes no request rate.
  https://docs.gethealthie.com/guides/api-concepts/rate-limits ,
  https://docs.gethealthie.com/guides/api-concepts/error-handling
- Patients: `users(keywords:)` searches id, names, `record_identifier`, email and dob; we keep exact
  matches on the connection's `mrn_field`. https://docs.gethealthie.com/guides/patient
- Staff: `organizationMembers`. Tasks: `tasks(...)` can search `content` only, so `find_task` reads
  the most recent tasks the key's user created and matches `metadata`.
  https://docs.gethealthie.com/reference/2026-01-01/queries/tasks
"""

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, http

NAME = "healthie"
TITLE = "Healthie (GraphQL createTask)"
MARKER_KEY = "emrtasks_task_id"
DEFAULT_API_VERSION = "2026-01-01"
MIN_API_VERSION = "2026-01-01"
"""The oldest version whose schema the adapter's operations are checked against: older versions answer
users, organizationMembers and tasks as plain offset-paged lists (the 2024-06-01 baseline does), not
the connections (`nodes`, `page_info`, `first`/`after`) the adapter reads."""
MRN_FIELDS = ("record_identifier", "id")
PAGE_SIZE = 100
LOOKUP_PAGES = 5
"""find_task reads at most this many pages of the key user's newest tasks (500 tasks)."""
SEARCH_PAGES = 10

RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=10_000, target="createTaskInput.content"),
        rules.FieldRule(
            "patient_mrn", True, max_length=64, target="createTaskInput.client_id (patient found by MRN)"
        ),
        rules.FieldRule("subject", False, max_length=255, target="createTaskInput.content (first line)"),
        rules.FieldRule("assignee_user_id", False, max_length=64, target="createTaskInput.assignee_ids[0]"),
        rules.FieldRule(
            "notify_list",
            False,
            max_length=64,
            max_items=10,
            target="createTaskInput.assignee_ids[1:] (co-assignees)",
        ),
    ),
    assignee_identified_by="Healthie user id of a provider or staff member (organizationMembers)",
    patient_identified_by="the patient's record_identifier (the connection's mrn_field)",
    finds_by_marker=True,
    notes=(
        "Healthie tasks have no title: the subject becomes the first line of the content.",
        "Without an assignee Healthie assigns the task to the API key's user.",
        "notify_list users become co-assignees, whom Healthie notifies; Healthie has no watchers.",
        "Healthie tasks have no type, so phone_call_type_id is refused.",
        "Our task id is kept in the task's metadata; find_task reads the 500 newest tasks the API key's "
        "user created, and answers unknown if the task is not among them.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None  # Healthie documents no rate, only TOO_MANY_REQUESTS

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting(
        "base_url",
        "API host: https://api.gethealthie.com, or https://staging-api.gethealthie.com for the sandbox",
        default="https://api.gethealthie.com",
    ),
    base.Setting("api_key", "a Healthie API key (its user's permissions apply)", secret=True),
    base.Setting(
        "api_version", "the Healthie-GraphQL-API-Version header (a release date)", default=DEFAULT_API_VERSION
    ),
    base.Setting(
        "mrn_field", "the patient field holding the MRN: record_identifier or id", default=MRN_FIELDS[0]
    ),
    base.Setting("authorization_shard", "AuthorizationShard id, for accounts in a shard only", False),
)

PATIENTS_QUERY = """
query emrtasksPatients($keywords: String, $first: Int, $after: String) {
  users(keywords: $keywords, first: $first, after: $after) {
    nodes { id record_identifier first_name last_name dob sex gender phone_number }
    page_info { has_next_page end_cursor }
  }
}"""
MEMBERS_QUERY = """
query emrtasksMembers($first: Int, $after: String) {
  organizationMembers(first: $first, after: $after) {
    nodes { id full_name first_name last_name }
    page_info { has_next_page end_cursor }
  }
}"""
CREATE_MUTATION = """
mutation emrtasksCreateTask($input: createTaskInput) {
  createTask(input: $input) {
    task { id }
    messages { field message }
  }
}"""
FIND_QUERY = """
query emrtasksFindTask($type: String, $createdBySelf: Boolean, $showHidden: Boolean,
                       $orderBy: TaskOrderKeys, $first: Int, $after: String) {
  tasks(type: $type, created_by_self: $createdBySelf, show_hidden: $showHidden,
        order_by: $orderBy, first: $first, after: $after) {
    nodes { id metadata }
    page_info { has_next_page end_cursor }
  }
}"""
FIND_VARIABLES = {"type": "all", "createdBySelf": True, "showHidden": True, "orderBy": "CREATED_DESC"}

_PATIENT_FIELDS = ("client_id", "client")
_USER_FIELDS = ("assignee_ids", "assignees", "user_id", "user")
_AUTH_CODES = frozenset({"UNAUTHENTICATED", "UNAUTHORIZED", "INVALID_API_KEY"})
_AUTH_WORDS = re.compile(r"api[ _-]?key|authenticat", re.IGNORECASE)
_VERSION_CODES = frozenset({"UNSUPPORTED_API_VERSION", "MISSING_API_VERSION_HEADER"})
_STATIC_CODES = frozenset({"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"})
_STATIC_WORDS = re.compile(r"^(Query has (complexity|depth)|No query string|Parse error)", re.IGNORECASE)
_CAMEL = re.compile(r"^[a-z]+[A-Z]\w*$")  # graphql-ruby's static validation codes, e.g. undefinedField
_RELEASE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Failure = outcomes.Rejected | outcomes.RetryLater | outcomes.Unknown


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    if config.get("mrn_field", MRN_FIELDS[0]) not in MRN_FIELDS:
        problems.append(f"mrn_field must be one of: {', '.join(MRN_FIELDS)}")
    url = config.get("base_url")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        problems.append("base_url must start with https://")
    problems += _version_problems(str(config.get("api_version") or DEFAULT_API_VERSION))
    return problems


def _version_problems(version: str) -> list[str]:
    """Healthie takes only its release dates; below MIN_API_VERSION our queries are not in its schema."""
    if not _RELEASE_DATE.match(version):
        return [f"api_version must be a Healthie release date (YYYY-MM-DD), e.g. {DEFAULT_API_VERSION}"]
    if version < MIN_API_VERSION:
        return [
            f"api_version must be {MIN_API_VERSION} or later: before it Healthie answers users, "
            "organizationMembers and tasks as plain lists, which the adapter does not read"
        ]
    return []


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "HealthieAdapter":
    return HealthieAdapter(config, base.http_of(deps, NAME))


class HealthieAdapter:
    def __init__(self, config: Mapping[str, Any], client: httpx.AsyncClient) -> None:
        self.rules = RULES
        self._http = client
        self._url = f"{str(config.get('base_url') or SETTINGS[0].default).rstrip('/')}/graphql"
        self._mrn_field = str(config.get("mrn_field") or MRN_FIELDS[0])
        self._auth = http.StaticToken(
            {"Authorization": f"Basic {config['api_key']}", "AuthorizationSource": "API"}
        )
        self._headers = {
            "Healthie-GraphQL-API-Version": str(config.get("api_version") or DEFAULT_API_VERSION)
        }
        if config.get("authorization_shard"):
            self._headers["AuthorizationShard"] = str(config["authorization_shard"])

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        nodes, _complete = await self._collect("users", PATIENTS_QUERY, {"keywords": mrn}, SEARCH_PAGES)
        found = [_patient(node, self._mrn_field) for node in nodes]
        return [p for p in found if mrn is None or p.mrn == mrn]

    async def list_users(self) -> list[directory.User]:
        nodes, _complete = await self._collect("organizationMembers", MEMBERS_QUERY, {}, SEARCH_PAGES)
        return [directory.User(str(n["id"]), _member_name(n), "staff") for n in nodes if n.get("id")]

    async def list_call_types(self) -> list[directory.CallType]:
        return []

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        variables = {"input": task_input(request, patient, marker)}
        found = await self._call("emrtasksCreateTask", CREATE_MUTATION, variables, write=True)
        if not isinstance(found, dict):
            return found
        return _created(found.get("createTask") or {})

    async def find_task(self, marker: str) -> outcomes.Lookup:
        nodes, complete = await self._collect("tasks", FIND_QUERY, FIND_VARIABLES, LOOKUP_PAGES)
        matches = [str(n["id"]) for n in nodes if _marker_of(n) == marker]
        if len(matches) == 1:
            return outcomes.Created(matches[0])
        if matches:
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"Healthie holds {len(matches)} tasks with it.")
        if complete:
            return outcomes.Absent()
        window = LOOKUP_PAGES * PAGE_SIZE
        return outcomes.Unknown(
            outcomes.OUTCOME_UNKNOWN,
            f"The task is not among the {window} newest tasks of the API key's user.",
        )

    async def _collect(
        self, root: str, query: str, variables: Mapping[str, Any], max_pages: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every node of a connection, page by page; True when the last page was reached."""
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        for _page in range(max_pages):
            data = await self._read(query, {**variables, "first": PAGE_SIZE, "after": after})
            connection = data.get(root) or {}
            nodes.extend(n for n in connection.get("nodes") or [] if isinstance(n, dict))
            page_info = connection.get("page_info") or {}
            after = page_info.get("end_cursor")
            if not page_info.get("has_next_page") or not after:
                return nodes, True
        return nodes, False

    async def _read(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        found = await self._call(_operation(query), query, variables, write=False)
        if isinstance(found, dict):
            return found
        if isinstance(found, outcomes.Unknown):  # only writes are ever unknown
            raise outcomes.AdapterError(outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, found.description))
        raise outcomes.AdapterError(found)

    async def _call(
        self, operation: str, query: str, variables: Mapping[str, Any], *, write: bool
    ) -> dict[str, Any] | Failure:
        body = {"operationName": operation, "query": query, "variables": dict(variables)}
        sent = await http.send(
            self._http, self._auth, "POST", self._url, write=write, headers=self._headers, json=body
        )
        if not isinstance(sent, httpx.Response):
            return sent
        # An error status may come with any body (a gateway's HTML); a success must be GraphQL's JSON.
        answer = _json(sent) if sent.status_code >= 400 else http.json_object(sent)
        failure = graphql_failure(sent, answer, write=write)
        if failure is not None:
            return failure
        data = answer.get("data")
        if not isinstance(data, dict):
            raise base.BadAnswer(sent.status_code, "a GraphQL answer without data")
        return data


def task_input(request: tasks.TaskRequest, patient: directory.Patient, marker: str) -> dict[str, Any]:
    """The createTaskInput: content (subject first), the patient, assignees, our marker in metadata."""
    content = f"{request.subject}\n\n{request.description}" if request.subject else request.description
    found: dict[str, Any] = {
        "content": content,
        "client_id": patient.emr_patient_id,
        "metadata": json.dumps({MARKER_KEY: marker}, separators=(",", ":")),
    }
    assignees = list(dict.fromkeys(a for a in (request.assignee_user_id, *request.notify_list) if a))
    if assignees:
        found["assignee_ids"] = assignees
    return found


def graphql_failure(response: httpx.Response, answer: Mapping[str, Any], *, write: bool) -> Failure | None:
    """What a Healthie answer means when it is not a plain success (an HTTP error or GraphQL errors[])."""
    errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
    if response.status_code < 400 and not errors:
        return None
    said = "; ".join(str(e.get("message") or "") for e in errors)[:500]
    codes = {str((e.get("extensions") or {}).get("code") or "") for e in errors}
    if response.status_code == 429 or "TOO_MANY_REQUESTS" in codes:
        return outcomes.RetryLater(
            outcomes.EMR_RATE_LIMITED, f"Healthie is rate limiting: {said}", http.retry_after(response)
        )
    if response.status_code in (401, 403) or codes & _AUTH_CODES or _AUTH_WORDS.search(said):
        return outcomes.Rejected(outcomes.LOGIN_REQUIRED, f"Healthie refused the API key: {said}")
    if codes & _VERSION_CODES:
        return outcomes.Rejected(
            outcomes.EMR_REJECTED, f"Healthie refused the API version (setting api_version): {said}"
        )
    general = http.status_outcome(response, write=write, detail=said)
    if general is not None and not isinstance(general, outcomes.Created):
        return general
    if "data" not in answer:  # refused before execution (GraphQL spec 7.1.2): nothing was written
        return outcomes.Rejected(outcomes.EMR_REJECTED, f"Healthie refused the request: {said}")
    if codes & _STATIC_CODES or any(_CAMEL.match(c) for c in codes) or _STATIC_WORDS.match(said):
        return outcomes.Rejected(outcomes.EMR_REJECTED, f"Healthie refused the request: {said}")
    if write:  # an error while executing: the task may have been written before it
        return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"Healthie failed while writing: {said}")
    return outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, f"Healthie failed: {said}")


def _created(payload: Mapping[str, Any]) -> outcomes.Outcome:
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    if messages:
        return _refusal(messages)
    task = payload.get("task")
    if isinstance(task, dict) and task.get("id"):
        return outcomes.Created(str(task["id"]))
    return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, "Healthie answered createTask without a task.")


def _refusal(messages: list[dict[str, Any]]) -> outcomes.Rejected:
    fields = {str(m.get("field") or "") for m in messages}
    said = "; ".join(f"{m.get('field') or 'task'}: {m.get('message')}" for m in messages)
    if fields & set(_PATIENT_FIELDS):
        return outcomes.Rejected(outcomes.PATIENT_NOT_FOUND, f"Healthie refused the patient: {said}")
    if fields & set(_USER_FIELDS):
        return outcomes.Rejected(outcomes.USER_NOT_FOUND, f"Healthie refused the assignee: {said}")
    return outcomes.Rejected(outcomes.EMR_REJECTED, f"Healthie refused the task: {said}")


def _patient(node: Mapping[str, Any], mrn_field: str) -> directory.Patient:
    return directory.Patient(
        emr_patient_id=str(node.get("id") or ""),
        mrn=str(node.get(mrn_field) or ""),
        first_name=str(node.get("first_name") or ""),
        last_name=str(node.get("last_name") or ""),
        dob=str(node.get("dob") or ""),
        sex=str(node.get("sex") or node.get("gender") or ""),
        phone=str(node.get("phone_number") or ""),
    )


def _member_name(node: Mapping[str, Any]) -> str:
    full = node.get("full_name") or f"{node.get('first_name') or ''} {node.get('last_name') or ''}".strip()
    return str(full or node["id"])


def _marker_of(node: Mapping[str, Any]) -> str | None:
    metadata = node.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    return str(metadata.get(MARKER_KEY)) if isinstance(metadata, dict) else None


def _operation(query: str) -> str:
    return query.split("(", 1)[0].split()[-1]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
