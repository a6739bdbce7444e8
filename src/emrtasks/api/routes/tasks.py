"""`POST /v1/tasks`, `GET /v1/tasks/requirements`, `GET /v1/tasks/{task_id}`, `GET /v1/jobs/{job_id}`."""

from fastapi import APIRouter, Request

from emrtasks.api import deps, patterns, schemas
from emrtasks.api.deps import ConnectionDep, Ctx
from emrtasks.api.responses import JSON
from emrtasks.observability import logs
from emrtasks.service import audit, directory, tasks

router = APIRouter(prefix="/v1", tags=["tasks"])
_AUTH = (401, 403)
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": patterns.IDEMPOTENCY_KEY},
    "description": "Same key and body: the first answer again (Idempotent-Replayed: true); "
    "another body: 422; while the first is in flight: 409. Kept 24 hours.",
}


_REPLAYED = {
    "description": "`true` when this is the first answer to the same Idempotency-Key and body, again",
    "required": False,
    "schema": {"type": "string", "enum": ["true"]},
}


@router.post(
    "/tasks",
    status_code=202,
    summary="Create a task in the connection's EMR",
    responses={
        202: {"model": schemas.Accepted, "headers": {"Idempotent-Replayed": _REPLAYED}},
        **schemas.errors(400, *_AUTH, 409, 413, 422, 502, 503),
    },
    openapi_extra=schemas.request_body(schemas.CreateTaskRequest)
    | deps.CONNECTION_SECURITY
    | {"parameters": [_IDEMPOTENCY_KEY]},
)
async def create_task(request: Request) -> JSON:
    # The hot route reads its credentials, body and header itself: FastAPI's dependency
    # resolution was the largest cost of an accepted request (docs/performance.md).
    connection = await deps.connection_of(request)
    body = await deps.read_json(request)
    idempotency_key = request.headers.get("idempotency-key")
    origin = deps.origin(request, connection=connection)
    accepted = await tasks.accept_task(request.app.state.ctx, connection, body, idempotency_key, origin)
    logs.TASK_ID.set(accepted.task_id)
    logs.JOB_ID.set(accepted.job_id)
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return JSON(accepted.as_public(), status_code=202, headers=headers)


@router.get(
    "/tasks/requirements",
    summary="The connection's EMR rules: required and optional fields, limits",
    responses={200: {"model": schemas.RequirementsResponse}, **schemas.errors(*_AUTH)},
)
async def get_requirements(ctx: Ctx, connection: ConnectionDep) -> JSON:
    return JSON({"success": True, "requirements": directory.requirements(ctx, connection)})


@router.get(
    "/tasks/{task_id}",
    summary="A task and its outcome",
    responses={200: {"model": schemas.TaskResponse}, **schemas.errors(*_AUTH, 404)},
)
async def get_task(request: Request, ctx: Ctx, connection: ConnectionDep, task_id: str) -> JSON:
    origin = deps.origin(request, connection=connection)
    async with audit.recorded(ctx, origin, "task.read", {"task_id": audit.safe_id(task_id)}):
        found = await tasks.get_task(ctx, connection, task_id)
    return JSON({"success": True, "task": found})


@router.get(
    "/jobs/{job_id}",
    summary="A background job: state, attempts, next attempt, last error",
    responses={200: {"model": schemas.JobResponse}, **schemas.errors(*_AUTH, 404)},
)
async def get_job(request: Request, ctx: Ctx, connection: ConnectionDep, job_id: str) -> JSON:
    origin = deps.origin(request, connection=connection)
    async with audit.recorded(ctx, origin, "job.read", {"job_id": audit.safe_id(job_id)}):
        found = await tasks.get_job(ctx, connection, job_id)
    return JSON({"success": True, "job": found})
