"""`POST /v1/bench/noop`: the same server, front and body reading as `POST /v1/tasks`, and nothing else.

Benchmarks compare the accept path against it to see how close it comes to the stack's own limit.
Mounted only with EMRTASKS_BENCH_ROUTES=true.
"""

from fastapi import APIRouter, Request

from emrtasks.api import deps
from emrtasks.api.responses import JSON

router = APIRouter(prefix="/v1/bench", tags=["bench"], include_in_schema=False)


@router.post("/noop", status_code=202)
async def noop(request: Request) -> JSON:
    body = await deps.read_json(request)
    return JSON({"success": True, "echo": isinstance(body, dict)}, status_code=202)
