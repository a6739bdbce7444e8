"""`POST /v1/link/token/create` and `GET /v1/link/token/exchange` (client credentials only; Cobalt's
Link flow). The Link page itself is served by `emrtasks.web`."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from emrtasks.api import deps, schemas
from emrtasks.api.deps import ClientDep, Ctx, JsonBody
from emrtasks.api.responses import JSON
from emrtasks.service import link

router = APIRouter(prefix="/v1/link", tags=["link"])


@router.post(
    "/token/create",
    summary="A link token (lt_...) for the Link page: single-use, 30 minutes",
    responses={200: {"model": schemas.LinkTokenCreated}, **schemas.errors(400, 401, 413)},
    openapi_extra=schemas.request_body(schemas.LinkTokenCreate),
)
async def create_link_token(request: Request, ctx: Ctx, client: ClientDep, body: JsonBody) -> JSON:
    created = await link.create_link_token(ctx, deps.origin(request, client=client), client, body)
    return JSON(created)


@router.get(
    "/token/exchange",
    summary="Exchange a public token (pt_..., single-use, 10 minutes) for the connection's access token",
    responses={200: {"model": schemas.LinkTokenExchanged}, **schemas.errors(400, 401)},
)
async def exchange_public_token(
    request: Request,
    ctx: Ctx,
    client: ClientDep,
    public_token: Annotated[str | None, Query(description="The pt_... token Link handed back.")] = None,
) -> JSON:
    token = await link.exchange(ctx, deps.origin(request, client=client), client, public_token)
    return JSON({"success": True, "token": token})
