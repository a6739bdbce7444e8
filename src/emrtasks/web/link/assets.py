"""Our own files for the Link pages: `/link.js` (the client page's script), the page's CSS and its
lightbox script. Read once from the package; answered with an ETag so browsers revalidate cheaply."""

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
STATIC = ("link.css", "lightbox.js")
"""What the Link page itself loads, at /link/static/<name>."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@functools.cache
def load(name: str) -> Asset:
    body = resources.files("emrtasks.web.link").joinpath("static", name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(body, _TYPES[name[name.rindex(".") :]], f'"{digest}"')


def answer(request: Request, asset: Asset, max_age: int) -> Response:
    headers = {
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        # link.js is included by client pages on other origins, some of which isolate themselves.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@router.get("/link.js")
async def link_js(request: Request) -> Response:
    # Short: client pages pick up a new version within minutes, and revalidation is a 304.
    return answer(request, load("link.js"), max_age=300)


@router.get("/link/static/{name}")
async def static(request: Request, name: str) -> Response:
    if name not in STATIC:
        return Response("Not found.", status_code=404, media_type="text/plain")
    return answer(request, load(name), max_age=3600)
