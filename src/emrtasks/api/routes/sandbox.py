"""`GET /v1/sandbox/emr-tasks`: what a sandbox connection's EMR holds, each task with its marker."""

from typing import Annotated

from fastapi import APIRouter, Query

from emrtasks.api import query, schemas
from emrtasks.api.deps import ConnectionDep, Ctx
from emrtasks.api.responses import JSON
from emrtasks.service import sandbox

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"])


@router.get(
    "/emr-tasks",
    summary="Tasks as the sandbox EMR holds them (filter by marker = our task_id)",
    responses={200: {"model": schemas.EmrTasksResponse}, **schemas.errors(400, 401, 403)},
)
async def list_emr_tasks(
    ctx: Ctx,
    connection: ConnectionDep,
    _query: query.Checked,
    marker: Annotated[str | None, Query(max_length=64)] = None,
) -> JSON:
    found = await sandbox.emr_tasks(ctx, connection, marker)
    return JSON({"success": True, "emr_tasks": found})
