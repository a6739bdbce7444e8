"""Canvas Medical: a FHIR Task on Canvas's FHIR API, with Canvas's profile.

- `POST [base]/Task` (https://docs.canvasmedical.com/api/task): `status` and `description` required,
  `requester` required and a Practitioner (the connection's `requester_practitioner_id`), `intent`
  always `unknown`, `for` a Patient, `owner` a Practitioner (the staff assignee), a team through the
  extension `http://schemas.canvasmedical.com/fhir/extensions/task-group` (a Group reference), and
  `input` entries that become the task's labels (our phone call type).
- Canvas keeps no Task `identifier`, but searches Tasks by `label`
  (https://docs.canvasmedical.com/api/task, search parameters): our marker goes on the Task as one
  more label, `emrtasks:<task id>`, and a create whose reply is lost is looked up by it.
- A create answers 201 with a `null` body; the id is in the Location header.
- Patients by MRN identifier, staff from `GET [base]/Practitioner` with
  `include-non-schedulable-practitioners=true` (otherwise Canvas lists only schedulable staff, and
  front-desk staff could not be assignees), teams from `GET [base]/Group`. Pages hold at most 100
  entries and their `next` links are relative (https://docs.canvasmedical.com/api/pagination).
- Auth: OAuth2 client credentials at the instance's `/auth/token/`.
"""

from collections.abc import Mapping
from typing import Any

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, fhir

NAME = "canvas"
TITLE = "Canvas Medical (FHIR Task)"
TEAM_PREFIX = "team:"
TASK_GROUP = "http://schemas.canvasmedical.com/fhir/extensions/task-group"
RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=10_000, target="Task.description"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="Task.for (Patient by MRN identifier)"),
        rules.FieldRule(
            "assignee_user_id",
            False,
            max_length=80,
            target="Task.owner (Practitioner) or task-group (team:<id>)",
        ),
        rules.FieldRule("phone_call_type_id", False, max_length=64, target="Task.input (a label)"),
    ),
    assignee_identified_by="Canvas staff (Practitioner) id, or team:<Group id> for a team",
    patient_identified_by="Patient.identifier with the connection's mrn_system",
    finds_by_marker=True,
    notes=(
        "Canvas Tasks have no title and no notify list: subject and notify_list are refused, not dropped.",
        "Each Task carries the label emrtasks:<task_id>, by which a create whose reply was lost is found.",
    ),
)
MARKER_LABEL = "emrtasks:"
PAGE_SIZE = "100"  # Canvas's largest page (https://docs.canvasmedical.com/api/pagination)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting("base_url", "the instance's FHIR base URL, e.g. https://fumage-example.canvasmedical.com"),
    base.Setting("token_url", "OAuth2 token endpoint, e.g. https://example.canvasmedical.com/auth/token/"),
    base.Setting("client_id", "OAuth2 client id", held_by=base.DEPLOYMENT),
    base.Setting("client_secret", "OAuth2 client secret", secret=True, held_by=base.DEPLOYMENT),
    base.Setting("mrn_system", "the identifier system of the practice's MRNs"),
    base.Setting(
        "requester_practitioner_id", "the Practitioner who requests every task (Canvas requires one)"
    ),
    base.Setting("labels", "phone call types offered, as task labels: a list of strings", False, kind=list),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    if any(not isinstance(label, str) for label in config.get("labels") or []):
        problems.append("labels must be a list of strings")
    return problems


def build(connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps) -> "CanvasAdapter":
    return CanvasAdapter(RULES, config, base.http_of(deps, NAME))


class CanvasAdapter(fhir.FhirAdapter):
    conditional_create = False  # Canvas keeps no Task.identifier to match on
    practitioner_search = {"_count": PAGE_SIZE, "include-non-schedulable-practitioners": "true"}

    def __init__(self, task_rules: rules.Rules, config: Mapping[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(task_rules, config, http)
        self._requester_id = str(config["requester_practitioner_id"])
        self._labels = [str(label) for label in config.get("labels") or []]

    async def list_users(self) -> list[directory.User]:
        staff = [directory.User(u.id, u.name, "staff") for u in await super().list_users()]
        teams = await self._search("Group", {"_count": PAGE_SIZE})
        return staff + [
            directory.User(f"{TEAM_PREFIX}{g['id']}", str(g.get("name") or g["id"]), "group")
            for g in teams
            if g.get("id")
        ]

    async def list_call_types(self) -> list[directory.CallType]:
        return [directory.CallType(label, label) for label in self._labels]

    async def find_task(self, marker: str) -> outcomes.Lookup:
        label = f"{MARKER_LABEL}{marker}"
        try:
            found = await self._search("Task", {"label": label})
        except outcomes.AdapterError as exc:
            if isinstance(exc.outcome, outcomes.RetryLater):
                return exc.outcome
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, exc.outcome.description)
        # A FHIR string search may match by prefix (task_1 would find task_10): keep exact labels only.
        ids = [str(t["id"]) for t in found if t.get("id") and label in labels_of(t)]
        if not ids:
            return outcomes.Absent()
        if len(ids) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"Canvas holds {len(ids)} Tasks with this marker."
            )
        return outcomes.Created(ids[0])

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        outcome = await super().create_task(request, patient, marker)
        if isinstance(outcome, outcomes.Unknown) and "several Tasks" in outcome.description:
            return outcomes.Rejected(outcomes.EMR_REJECTED, "Canvas refused the Task (412).")
        return outcome

    def task_resource(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> dict[str, Any]:
        task: dict[str, Any] = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "unknown",
            "description": request.description,
            "for": {"reference": f"Patient/{patient.emr_patient_id}"},
            "requester": {"reference": f"Practitioner/{self._requester_id}"},
        }
        assignee = request.assignee_user_id
        if assignee and assignee.startswith(TEAM_PREFIX):
            group = assignee.removeprefix(TEAM_PREFIX)
            task["extension"] = [{"url": TASK_GROUP, "valueReference": {"reference": f"Group/{group}"}}]
        elif assignee:
            task["owner"] = {"reference": f"Practitioner/{assignee}"}
        labels = [request.phone_call_type_id] if request.phone_call_type_id else []
        task["input"] = [
            {"type": {"text": "label"}, "valueString": v} for v in [*labels, MARKER_LABEL + marker]
        ]
        return task


def labels_of(task: Mapping[str, Any]) -> list[str]:
    """A Canvas Task's labels: its `input` entries whose type text is `label`."""
    return [
        str(i.get("valueString"))
        for i in task.get("input") or []
        if isinstance(i, dict) and (i.get("type") or {}).get("text") == "label"
    ]


# Linking a practice (Link): the instance's own authorization server, authorization code with PKCE
# (https://docs.canvasmedical.com/api/customer-authentication/). The adapter keeps using the app's
# client credentials at token_url; the consent is what Link obtains.
OAUTH = base.OAuthEndpoints(
    authorize_url="{token_url|origin}/auth/authorize/",
    token_url="{token_url|origin}/auth/token/",  # noqa: S106 - a URL template
    scopes=("user/Patient.read", "user/Practitioner.read", "user/Task.*"),
)
