"""The application's front: what every request gets, in one layer, and a short way to the hot routes.

Every HTTP request gets its request id (api/request_id.py), `Cache-Control: no-store` unless the
answer sets its own caching (answers carry secrets and PHI, and no cache between us and the client
may keep them; the few public answers, `/.well-known/jwks.json` and Link's static files, set their
own), and, when telemetry is on, its metrics and server span (observability/asgi.py). One `send`
wrapper does all three: they were three middlewares, each with its own wrapper per request.

The hot routes (`POST /v1/tasks`, `GET /healthz`, `POST /v1/bench/noop`) read their own credentials,
body and headers, so they need nothing of Starlette's and FastAPI's stack: no exception middlewares,
no exit stacks, no router walk, no dependency solving. A request whose method and path are exactly
one of theirs is handed to the route's endpoint here, and a failure is answered by the app's own
exception handlers, as the stack would; every other request goes through the whole stack.
"""

import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from emrtasks.api import request_id
from emrtasks.observability import asgi as observed
from emrtasks.observability import logs

HOT_ROUTES = frozenset({("POST", "/v1/tasks"), ("GET", "/healthz"), ("POST", "/v1/bench/noop")})
_CACHE_CONTROL = b"cache-control"
_NO_STORE = (_CACHE_CONTROL, b"no-store")

Endpoint = Callable[[Request], Awaitable[Response]]


class App(FastAPI):
    """FastAPI with the front above. `open_hot_routes` once the hot routes' routers are included: a
    route included later cannot take their requests (the router tries its routes in order)."""

    observer: observed.Observe | None = None
    _hot: dict[tuple[str, str], tuple[APIRoute, Endpoint]] = {}  # replaced, never changed

    def open_hot_routes(self) -> None:
        """Take the hot routes' endpoints from the router, so they can be called directly."""
        found: dict[tuple[str, str], tuple[APIRoute, Endpoint]] = {}
        for method, path in HOT_ROUTES:
            route = self._route_taking(method, path)
            if route is not None:
                found[(method, path)] = (route, _direct(route))
        self._hot = found

    def hot_route(self, method: str, path: str) -> APIRoute | None:
        """The route a request of this method and path is handed to directly, if it is a hot one."""
        found = self._hot.get((method, path))
        return found[0] if found else None

    def _route_taking(self, method: str, path: str) -> APIRoute | None:
        """The route the router would hand this request to, if it is an `APIRoute` of that path."""
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route if isinstance(route, APIRoute) and route.path == path else None
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        rid = request_id.given(scope["headers"]) or os.urandom(12).hex()
        scope[request_id.SCOPE_KEY] = rid
        logs.REQUEST_ID.set(rid)  # this request's task only: each request runs in its own
        echoed = (request_id.HEADER, rid.encode())

        async def send_front(message: Any) -> None:
            if message["type"] == "http.response.start":
                scope[observed.STATUS_KEY] = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == _CACHE_CONTROL for name, _ in headers):
                    headers.append(_NO_STORE)
                headers.append(echoed)
                message = {**message, "headers": headers}
            await send(message)

        hot = self._hot.get((scope["method"], scope["path"])) if not scope.get("root_path") else None
        if hot is None:
            answer = super().__call__(scope, receive, send_front)
        else:
            answer = self._hot_call(scope, receive, send_front, hot)
        if self.observer is None:
            await answer
        else:
            await self.observer.observed(scope, answer)

    async def _hot_call(self, scope: Any, receive: Any, send: Any, hot: tuple[APIRoute, Endpoint]) -> None:
        route, endpoint = hot
        scope["app"] = self
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler_of(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            await response(scope, receive, send)
            if _is_crash(exc, self.exception_handlers):
                raise  # as Starlette's ServerErrorMiddleware does: the server logs it too
            return
        await response(scope, receive, send)

    def _handler_of(self, exc: Exception) -> Any:
        for kind in type(exc).__mro__:
            if kind in self.exception_handlers:
                return self.exception_handlers[kind]
        return None


def _is_crash(exc: Exception, handlers: dict[Any, Any]) -> bool:
    """Whether only the catch-all handler took `exc` (Starlette answers 500 with it, then re-raises)."""
    return not any(kind in handlers for kind in type(exc).__mro__ if kind is not Exception)


def _direct(route: APIRoute) -> Endpoint:
    """The route's endpoint as `endpoint(request)`: it must take the request alone, or nothing."""
    parameters = list(inspect.signature(route.endpoint).parameters.values())
    if not parameters:
        bare: Callable[[], Awaitable[Response]] = route.endpoint

        async def call(_request: Request) -> Response:
            return await bare()

        return call
    if len(parameters) == 1 and parameters[0].annotation is Request:
        found: Endpoint = route.endpoint
        return found
    raise TypeError(f"hot route {route.path} must take the request alone (it takes {parameters})")
