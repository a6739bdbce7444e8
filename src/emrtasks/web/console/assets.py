"""The console's own stylesheet (its pages need no script): read once from the package, answered with
an ETag."""

import functools
import hashlib
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

_TYPES = {"console.css": "text/css; charset=utf-8"}


@functools.cache
def _load(name: str) -> tuple[bytes, str]:
    body = resources.files("emrtasks.web.console").joinpath("static", name).read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@router.get("/console/static/{name}")
async def static(request: Request, name: str) -> Response:
    if name not in _TYPES:
        return Response("Not found.", status_code=404, media_type="text/plain")
    body, etag = _load(name)
    headers = {"Cache-Control": "private, max-age=3600", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_TYPES[name], headers=headers)
