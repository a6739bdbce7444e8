"""`/docs` (Swagger UI) and `/redoc` (Redoc): the OpenAPI document for people, served whole from our own
origin. The JavaScript and CSS are those the `fastapi-offline` package ships (Swagger UI 5, Redoc 2);
nothing is loaded from another origin, and a Content-Security-Policy allowing only 'self' says so to the
browser."""

import functools
import secrets
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_VENDOR = Path(fastapi_offline.__file__).parent / "static"
_OURS = Path(__file__).parent / "static"
_ASSETS = {
    "swagger-ui-bundle.js": _VENDOR / "swagger-ui-bundle.js",
    "swagger-ui.css": _VENDOR / "swagger-ui.css",
    "favicon.png": _VENDOR / "favicon.png",
    "swagger-init.js": _OURS / "swagger-init.js",
    "redoc-init.js": _OURS / "redoc-init.js",
}
ASSET_PATH = "/docs/assets"
OPENAPI_URL = "/openapi.json"

# Scripts, styles, fonts and fetches from our origin only. Both pages also set styles from script through
# CSSOM, which 'self' allows; /redoc adds a nonce for the style elements Redoc writes (below).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # both draw icons from SVG data: URLs in their CSS: nothing is fetched
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# The assets change only with the package: browsers may keep them a day.
_ASSET_HEADERS = {**_HEADERS, "Cache-Control": "public, max-age=86400"}

_SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>emrtasks API</title>
<link rel="icon" href="{ASSET_PATH}/favicon.png">
<link rel="stylesheet" href="{ASSET_PATH}/swagger-ui.css">
</head>
<body data-openapi-url="{OPENAPI_URL}">
<div id="swagger-ui"></div>
<script src="{ASSET_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSET_PATH}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>emrtasks API</title>
<link rel="icon" href="{ASSET_PATH}/favicon.png">
</head>
<body data-openapi-url="{OPENAPI_URL}" data-nonce="{{nonce}}">
<div id="redoc"></div>
<script src="{ASSET_PATH}/redoc.standalone.js"></script>
<script src="{ASSET_PATH}/redoc-init.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER_PAGE, headers=_HEADERS)


# The two style elements Redoc adds as its script loads, before it knows the page's nonce: an empty one
# (styled-components fills it through CSSOM) and perfect-scrollbar's CSS. Their hashes change only with
# Redoc's version; the browser test fails, naming the new hash, if they do.
_REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """Redoc adds style elements as it renders; the page's nonce (passed to Redoc by redoc-init.js) lets
    them in, and no other inline style."""
    nonce = secrets.token_urlsafe(18)
    styles = " ".join(("'self'", f"'nonce-{nonce}'", *_REDOC_STYLE_HASHES))
    csp = CONTENT_SECURITY_POLICY.replace("style-src 'self'", f"style-src {styles}")
    page = _REDOC_PAGE.replace("{nonce}", nonce)
    return HTMLResponse(page, headers={**_HEADERS, "Content-Security-Policy": csp})


@router.get(ASSET_PATH + "/{name}")
async def asset(name: str) -> Response:
    if name == "redoc.standalone.js":
        return Response(_redoc_script(), media_type="text/javascript", headers=_ASSET_HEADERS)
    path = _ASSETS.get(name)
    if path is None:
        raise HTTPException(404)
    return FileResponse(path, headers=_ASSET_HEADERS)


@functools.cache
def _redoc_script() -> bytes:
    """Redoc as shipped, but for the one image it fetches from its maker's CDN (the sidebar's "API docs by
    Redocly" logo): an empty data: URL instead, which fails to load, and Redoc then leaves the image out."""
    return (_VENDOR / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO_URL.encode(), b"data:,")


REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"
