"""`GET /v1/settings`, `POST /v1/settings`: the connection's access_token_reference_id (Cobalt-compatible)."""

from fastapi import APIRouter, Request

from emrtasks.api import deps, schemas
from emrtasks.api.deps import ConnectionDep, Ctx, JsonBody
from emrtasks.api.responses import JSON
from emrtasks.service import admin

router = APIRouter(prefix="/v1", tags=["settings"])
_AUTH = (401, 403)


@router.get(
    "/settings",
    summary="The connection's settings",
    responses={200: {"model": schemas.SettingsResponse}, **schemas.errors(*_AUTH)},
)
async def get_settings(connection: ConnectionDep) -> JSON:
    return JSON({"success": True, "data": admin.settings_of(connection)})


@router.post(
    "/settings",
    summary="Set access_token_reference_id (no other field is accepted)",
    responses={200: {"model": schemas.SettingsResponse}, **schemas.errors(400, *_AUTH, 413)},
    openapi_extra=schemas.request_body(schemas.SettingsUpdate),
)
async def update_settings(request: Request, ctx: Ctx, connection: ConnectionDep, body: JsonBody) -> JSON:
    data = await admin.update_settings(ctx, deps.origin(request, connection=connection), connection, body)
    return JSON({"success": True, "data": data})
