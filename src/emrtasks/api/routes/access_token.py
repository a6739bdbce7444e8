"""`DELETE /v1/access-token`: a client app revokes one of its clinic links (client credentials and the
access token to revoke)."""

from typing import Annotated

from fastapi import APIRouter, Request, Security

from emrtasks.api import deps, schemas
from emrtasks.api.deps import ClientDep, Ctx
from emrtasks.api.responses import JSON
from emrtasks.service import credentials

router = APIRouter(prefix="/v1", tags=["connections"])


@router.delete(
    "/access-token",
    summary="Revoke an access token: its connection is deleted and its pending work ends",
    responses={200: {"model": schemas.AccessTokenRevoked}, **schemas.errors(401)},
    openapi_extra=deps.CONNECTION_SECURITY,
)
async def revoke_access_token(
    request: Request,
    ctx: Ctx,
    client: ClientDep,
    access_token: Annotated[str | None, Security(deps.access_token_header)],
) -> JSON:
    origin = deps.origin(request, client=client)
    revoked = await credentials.revoke_access_token(ctx, origin, client.id, access_token)
    return JSON(
        {
            "success": True,
            "message": "Access token revoked; the connection is deleted.",
            "connection_id": revoked["connection_id"],
            "jobs_ended": revoked["jobs_ended"],
        }
    )
