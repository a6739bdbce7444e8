"""`GET /.well-known/jwks.json`: the public keys that sign our SMART Backend Services client assertions,
for EMRs' token endpoints to verify them (registered with the EMR as our JWKS URL). Unauthenticated."""

from fastapi import APIRouter

from emrtasks.api import schemas
from emrtasks.api.deps import Ctx
from emrtasks.api.responses import JSON
from emrtasks.service import keys

router = APIRouter(tags=["keys"])

# Token endpoints may cache it: a new key is published long before it signs
# (EMRTASKS_SIGNING_KEY_PUBLISH_SECONDS), and a retired key drops out of their caches within this.
CACHE_CONTROL = "public, max-age=300"


@router.get(
    "/.well-known/jwks.json",
    summary="The deployment's public signing keys (RFC 7517 JWK Set)",
    responses={200: {"model": schemas.JsonWebKeySet}, **schemas.errors(503)},
)
async def jwks(ctx: Ctx) -> JSON:
    return JSON(await keys.jwks(ctx.engine), headers={"cache-control": CACHE_CONTROL})
