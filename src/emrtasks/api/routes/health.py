"""`GET /healthz` (the process answers) and `GET /readyz` (the database answers)."""

from fastapi import APIRouter

from emrtasks.api import schemas
from emrtasks.api.deps import Ctx
from emrtasks.api.responses import JSON
from emrtasks.service import health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness", responses={200: {"model": schemas.Health}})
async def healthz() -> JSON:
    return JSON({"success": True, "status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the database is reachable",
    responses={200: {"model": schemas.Health}, **schemas.errors(503)},
)
async def readyz(ctx: Ctx) -> JSON:
    await health.check_database(ctx)
    return JSON({"success": True, "status": "ready"})
