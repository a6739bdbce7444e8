"""Canvas's FHIR Task create as documented (https://docs.canvasmedical.com/api/task): description and
status required, requester a Practitioner, intent `unknown`, team through the task-group extension."""

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract.fakes.fhir import FakeFhir, bundle, outcome

TASK_GROUP = "http://schemas.canvasmedical.com/fhir/extensions/task-group"


class FakeCanvas(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.groups = {"grp-1": {"resourceType": "Group", "id": "grp-1", "name": "Front desk"}}
        self.app.router.routes.insert(0, Route("/auth/token/", self.token, methods=["POST"]))
        self.app.router.routes.insert(0, Route("/Group", self.search_groups, methods=["GET"]))

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path.endswith("/auth/token/")

    async def search_groups(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return outcome(401, "invalid token")
        return bundle(list(self.groups.values()))

    async def search_tasks(self, request: Request) -> JSONResponse:
        return outcome(400, "Unknown search parameter: identifier")

    def check_task(self, task: dict[str, Any]) -> tuple[int, str] | None:
        if not task.get("description"):
            return 400, "description: field required"
        if task.get("status") not in ("requested", "completed", "cancelled"):
            return 400, "status: must be requested, completed or cancelled"
        if task.get("intent") != "unknown":
            return 400, "intent: must be unknown"
        requester = (task.get("requester") or {}).get("reference", "")
        if requester.removeprefix("Practitioner/") not in self.practitioners:
            return 400, "requester: a Practitioner reference is required"
        for extension in task.get("extension") or []:
            group = extension["valueReference"]["reference"].removeprefix("Group/")
            if extension["url"] != TASK_GROUP or group not in self.groups:
                return 400, "extension: unknown team"
        return super().check_task({**task, "intent": "order"})
