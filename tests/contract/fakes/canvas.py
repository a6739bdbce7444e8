"""Canvas's FHIR API as Canvas documents it, checked against Canvas's own documentation source.

Canvas publishes no OpenAPI document or FHIR profiles for its API; its docs site is generated from YAML
front matter that lists, per resource, each attribute (`required_in`, `exclude_in`, `enum_options`)
and each search parameter. Those files are kept verbatim in tests/contract/specs/canvas/ (SOURCE.md
says where from), and this fake validates every request against them:

- `POST /Task`: each attribute must be documented and accepted on create, with its documented type
  and values; every attribute `required_in: create` must be there (status, description, requester,
  intent `unknown`, ...). A refused request answers 400 naming the field. Created: 201 with a `null`
  body and the id only in the Location header (specs/canvas/block-apidoc-responses-created.html).
- Searches accept only the documented search parameters (and `_count`/`_offset`); an unknown one is
  400 naming it (so `Task?identifier=` fails, as Canvas keeps no Task.identifier).
- Pages: `_count` defaults to 10 and is capped at 100; `self`/`first`/`next`/`last` links are relative
  (`/Practitioner?_count=100&_offset=100`; specs/canvas/pagination.md).
- `Practitioner` search returns only schedulable staff unless `include-non-schedulable-practitioners`
  is `true` (specs/canvas/practitioner.yml).
"""

import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.fakes.fhir import FakeFhir, outcome

SPECS = Path(__file__).parents[1] / "specs" / "canvas"
TASK_GROUP = "http://schemas.canvasmedical.com/fhir/extensions/task-group"
MAX_COUNT = 100  # pagination.md: "a maximum page size (_count) that is enforced by the server ... 100"
DEFAULT_COUNT = 10  # pagination.md: "When no count is specified in a search, it will default to 10."
PAGING = ("_count", "_offset")
FRONT_DESK = {"prac-fd": "Riley Front Desk"}  # staff who cannot be scheduled: hidden by default


@cache
def spec(resource: str) -> dict[str, Any]:
    """The apidoc block of a resource's page in Canvas's documentation source."""
    front = yaml.safe_load((SPECS / f"{resource.lower()}.yml").read_text())
    block: dict[str, Any] = front["sections"][0]["blocks"][0]
    return _errata(block)


def _errata(block: dict[str, Any]) -> dict[str, Any]:
    """Task's YAML nests `input.valueString` under `input.type`, while the same page's example request
    (and the read and search examples) carry it on `input` itself; the example is what Canvas accepts."""
    for attribute in block.get("attributes") or []:
        if attribute["name"] != "input":
            continue
        kind = next(a for a in attribute["attributes"] if a["name"] == "type")
        value = [a for a in kind["attributes"] if a["name"] == "valueString"]
        kind["attributes"] = [a for a in kind["attributes"] if a["name"] != "valueString"]
        attribute["attributes"] = [*attribute["attributes"], *value]
    return block


def search_parameters(resource: str) -> set[str]:
    return {p["name"] for p in spec(resource).get("search_parameters") or []} | set(PAGING)


def _says(entry: dict[str, Any], key: str, endpoint: str) -> bool:
    return endpoint in [s.strip() for s in str(entry.get(key) or "").split(",")]


def check_body(attributes: list[dict[str, Any]], body: Any, endpoint: str, path: str) -> str | None:
    """The first way `body` breaks the documented attributes, naming the field; None if it keeps them."""
    if not isinstance(body, dict):
        return f"{path}: must be an object"
    documented = {a["name"]: a for a in attributes}
    for name, attribute in documented.items():
        if _says(attribute, "required_in", endpoint) and name not in body:
            return f"{path}.{name}: required"
    for name, value in body.items():
        if "." not in path and name == "resourceType":
            continue
        attribute = documented.get(name)
        if attribute is None or _says(attribute, "exclude_in", endpoint):
            return f"{path}.{name}: not an attribute Canvas accepts on {endpoint}"
        problem = _check_value(attribute, value, endpoint, f"{path}.{name}")
        if problem:
            return problem
    return None


def _check_value(attribute: dict[str, Any], value: Any, endpoint: str, path: str) -> str | None:
    kind = str(attribute.get("type") or "string")
    if kind.startswith("array"):
        if not isinstance(value, list):
            return f"{path}: must be an array"
        item = {**attribute, "type": kind.removeprefix("array[").removesuffix("]")}
        for index, element in enumerate(value):
            problem = _check_value(item, element, endpoint, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if kind == "json":
        return check_body(attribute.get("attributes") or [], value, endpoint, path)
    if kind.startswith("enum ["):
        allowed = [v.strip() for v in kind.removeprefix("enum [").removesuffix("]").split(",")]
        return None if value in allowed else f"{path}: must be one of {allowed}"
    if not isinstance(value, str):
        return f"{path}: must be a string"
    options = [
        o["value"] for o in attribute.get("enum_options") or [] if not _says(o, "exclude_in", endpoint)
    ]
    if options and value not in options:
        return f"{path}: must be one of {options}"
    return None


class FakeCanvas(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.schedulable = set(self.practitioners)
        self.practitioners |= {
            pid: {"resourceType": "Practitioner", "id": pid, "name": [{"text": name}]}
            for pid, name in FRONT_DESK.items()
        }
        self.groups = {"grp-1": {"resourceType": "Group", "id": "grp-1", "name": "Front desk"}}
        self.app = Starlette(
            routes=[
                Route("/auth/token/", self.token, methods=["POST"]),
                Route("/Patient", self.search_patients, methods=["GET"]),
                Route("/Practitioner", self.search_practitioners, methods=["GET"]),
                Route("/Group", self.search_groups, methods=["GET"]),
                Route("/Task", self.search_tasks, methods=["GET"]),
                Route("/Task", self.create_task, methods=["POST"]),
            ]
        )

    def add_staff(self, count: int, *, schedulable: bool = True) -> list[str]:
        """More staff (for directories past one page)."""
        ids = [f"staff-{len(self.practitioners) + i}" for i in range(count)]
        for pid in ids:
            self.practitioners[pid] = {"resourceType": "Practitioner", "id": pid, "name": [{"text": pid}]}
            if schedulable:
                self.schedulable.add(pid)
        return ids

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path.endswith("/auth/token/")

    # --- searches ---
    def _refused(self, request: Request, resource: str) -> JSONResponse | None:
        if not self._authorized(request):
            return outcome(401, "Authentication failed")
        unknown = sorted(set(request.query_params) - search_parameters(resource))
        if unknown:
            return outcome(400, f"Unknown search parameter: {unknown[0]}")
        return None

    def page(self, request: Request, resource: str, found: list[dict[str, Any]]) -> JSONResponse:
        """A searchset page with Canvas's relative links (pagination.md)."""
        count = min(int(request.query_params.get("_count") or DEFAULT_COUNT), MAX_COUNT)
        offset = int(request.query_params.get("_offset") or 0)
        body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
        if found:
            query = [(k, v) for k, v in request.query_params.multi_items() if k not in PAGING]

            def link(relation: str, at: int) -> dict[str, str]:
                return {
                    "relation": relation,
                    "url": f"/{resource}?{urlencode([*query, ('_count', count), ('_offset', at)])}",
                }

            last = (len(found) - 1) // count * count
            body["link"] = [link("self", offset), link("first", 0)]
            if offset + count < len(found):
                body["link"].append(link("next", offset + count))
            body["link"].append(link("last", last))
            body["entry"] = [{"resource": r} for r in found[offset : offset + count]]
        return JSONResponse(body, media_type="application/fhir+json")

    async def search_patients(self, request: Request) -> JSONResponse:
        refused = self._refused(request, "Patient")
        if refused:
            return refused
        system, _, value = request.query_params.get("identifier", "|").partition("|")
        found = [
            p
            for p in self.patients.values()
            if any(i["system"] == system and i["value"] == value for i in p["identifier"])
        ]
        return self.page(request, "Patient", found)

    async def search_practitioners(self, request: Request) -> JSONResponse:
        refused = self._refused(request, "Practitioner")
        if refused:
            return refused
        everyone = request.query_params.get("include-non-schedulable-practitioners", "").lower() == "true"
        found = [p for pid, p in self.practitioners.items() if everyone or pid in self.schedulable]
        return self.page(request, "Practitioner", found)

    async def search_groups(self, request: Request) -> JSONResponse:
        refused = self._refused(request, "Group")
        if refused:
            return refused
        return self.page(request, "Group", list(self.groups.values()))

    async def search_tasks(self, request: Request) -> JSONResponse:
        refused = self._refused(request, "Task")
        if refused:
            return refused
        label = request.query_params.get("label")
        found = [
            t
            for t in self.created
            if label is None
            or any(i["type"]["text"] == "label" and i["valueString"] == label for i in t.get("input") or [])
        ]
        return self.page(request, "Task", found)

    # --- Task create ---
    async def create_task(self, request: Request) -> Response:  # type: ignore[override]
        if not self._authorized(request):
            return outcome(401, "Authentication failed")
        task = await request.json()
        problem = self.check_task(task)
        if problem:
            return outcome(*problem)
        task = {**task, "id": str(uuid.uuid4())}
        self.created.append(task)
        location = f"{str(request.base_url).rstrip('/')}/Task/{task['id']}/_history/1"
        # block-apidoc-responses-created.html: the id in the location header and a null body
        return Response(
            b"null", status_code=201, media_type="application/json", headers={"location": location}
        )

    def check_task(self, task: dict[str, Any]) -> tuple[int, str] | None:
        if task.get("resourceType") != "Task":
            return 400, "resourceType must be Task"
        problem = check_body(spec("Task")["attributes"], task, "create", "Task")
        if problem:
            return 400, problem
        requester = task["requester"]["reference"]
        if requester.removeprefix("Practitioner/") not in self.practitioners:
            return 400, f"Task.requester: {requester} is not a known Practitioner"
        for extension in task.get("extension") or []:
            group = extension.get("valueReference", {}).get("reference", "").removeprefix("Group/")
            if group not in self.groups:
                return 400, "Task.extension: unknown team"
        return super().check_task(task)
