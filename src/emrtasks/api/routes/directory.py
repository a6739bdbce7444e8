"""`GET /v1/users`, `GET /v1/phone-call-types`, `GET /v1/patients`: the connection's EMR directory."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from emrtasks.api import deps, query, schemas
from emrtasks.api.deps import ConnectionDep, Ctx
from emrtasks.api.responses import JSON
from emrtasks.service import audit, directory

router = APIRouter(prefix="/v1", tags=["directory"])
_AUTH = (401, 403)
_EMR = (502, 503)  # the EMR failed to answer, or asks us to slow down (Retry-After)


@router.get(
    "/users",
    summary="The EMR's users: valid assignee_user_id and notify_list values",
    responses={200: {"model": schemas.UsersResponse}, **schemas.errors(400, *_AUTH, *_EMR)},
)
async def list_users(ctx: Ctx, connection: ConnectionDep, _query: query.Checked) -> JSON:
    return JSON({"success": True, "users": await directory.users(ctx, connection)})


@router.get(
    "/phone-call-types",
    summary="The EMR's phone call types: valid phone_call_type_id values",
    responses={200: {"model": schemas.CallTypesResponse}, **schemas.errors(400, *_AUTH, *_EMR)},
)
async def list_call_types(ctx: Ctx, connection: ConnectionDep, _query: query.Checked) -> JSON:
    found = await directory.call_types(ctx, connection)
    return JSON({"success": True, "phone_call_types": found})


@router.get(
    "/patients",
    summary="Look patients up by MRN (Cobalt-compatible, paginated)",
    responses={200: {"model": schemas.PatientsResponse}, **schemas.errors(400, *_AUTH, *_EMR)},
)
async def list_patients(
    request: Request,
    ctx: Ctx,
    connection: ConnectionDep,
    _query: query.Checked,
    mrn: Annotated[str | None, Query(max_length=255)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JSON:
    # The MRN looked up is PHI and never kept: the row names the connection only.
    origin = deps.origin(request, connection=connection)
    async with audit.recorded(ctx, origin, "patients.read", {"connection_id": connection.id}):
        found, pagination = await directory.patients(ctx, connection, mrn, page, page_size)
    return JSON({"success": True, "patients": found, "pagination": pagination})
