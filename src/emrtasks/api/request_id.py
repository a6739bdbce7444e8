"""`X-Request-Id`: the caller's (if it is a sane token) or a new one, echoed on every answer and kept
in the audit trail, so one request can be followed from the client's log to ours.

Plain ASGI, not Starlette's BaseHTTPMiddleware: that one costs a task per request on the hot route.
"""

import os
from typing import Any

from emrtasks.observability import logs

SCOPE_KEY = "emrtasks.request_id"
_HEADER = b"x-request-id"
_ALLOWED = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:")


def request_id_of(scope: Any) -> str | None:
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, str) else None


class RequestId:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given(scope["headers"]) or os.urandom(12).hex()
        scope[SCOPE_KEY] = request_id
        logs.REQUEST_ID.set(request_id)  # this request's task only: each request runs in its own
        echoed = (_HEADER, request_id.encode())

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _given(headers: Any) -> str | None:
    """Up to 128 characters of letters, digits and `-_.:`; anything else is replaced by our own."""
    for name, value in headers:
        if name == _HEADER:
            if 0 < len(value) <= 128 and all(byte in _ALLOWED for byte in value):
                return str(value.decode())
            return None
    return None
