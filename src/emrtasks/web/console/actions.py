"""Connections (status, EMR, last directory sync; sync now, disable, enable), clients (create, rotate
the secret: shown once, disable, enable) and webhook endpoints (status, failing since; enable, rotate
the secret). Lists for everyone signed in; actions for admins."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emrtasks.domain import errors
from emrtasks.service import audit, console, console_actions, credentials
from emrtasks.web.console import common

router = APIRouter(include_in_schema=False)

DONE = {
    "synced": "The EMR's directory was fetched again.",
    "disabled": "Disabled: its credentials are refused in every process within a second.",
    "enabled": "Enabled again.",
}


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


@router.get("/console/connections")
async def show_connections(request: Request) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    found = await console.list_connections(common.context_of(request))
    return common.render(
        request, "connections.html", "Connections", session, connections=found, done=_done(request)
    )


@router.get("/console/clients")
async def show_clients(request: Request) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    found = await credentials.list_clients(common.context_of(request))
    return common.render(request, "clients.html", "Clients", session, clients=found, done=_done(request))


@router.get("/console/endpoints")
async def show_endpoints(request: Request) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    found = await console.list_endpoints(common.context_of(request))
    return common.render(
        request, "endpoints.html", "Webhook endpoints", session, endpoints=found, done=_done(request)
    )


Act = Callable[[Any, audit.Origin, str], Awaitable[object]]


async def _act(request: Request, action: str, target: str, act: Act, back: str, done: str) -> Response:
    posted = await common.admin_form(request, action)
    if isinstance(posted, Response):
        return posted
    try:
        await act(common.context_of(request), posted.origin(request), target)
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return common.redirect(f"{back}?done={done}")


@router.post("/console/connections/{connection_id}/sync")
async def sync_connection(request: Request, connection_id: str) -> Response:
    act = console_actions.sync_connection
    return await _act(request, "connection.sync", connection_id, act, "/console/connections", "synced")


@router.post("/console/connections/{connection_id}/{change}")
async def change_connection(request: Request, connection_id: str, change: str) -> Response:
    if change not in ("disable", "enable"):
        return Response("Not found.", status_code=404, media_type="text/plain")

    async def act(ctx: Any, origin: audit.Origin, target: str) -> object:
        return await console_actions.set_connection_disabled(ctx, origin, target, change == "disable")

    return await _act(
        request, f"connection.{change}", connection_id, act, "/console/connections", f"{change}d"
    )


@router.post("/console/clients/{client_id}/{change}")
async def change_client(request: Request, client_id: str, change: str) -> Response:
    if change == "rotate-secret":
        return await _rotate_client(request, client_id)
    if change not in ("disable", "enable"):
        return Response("Not found.", status_code=404, media_type="text/plain")

    async def act(ctx: Any, origin: audit.Origin, target: str) -> object:
        return await console_actions.set_client_disabled(ctx, origin, target, change == "disable")

    return await _act(request, f"client.{change}", client_id, act, "/console/clients", f"{change}d")


@router.post("/console/clients")
async def create_client(request: Request) -> Response:
    posted = await common.admin_form(request, "client.create")
    if isinstance(posted, Response):
        return posted
    ctx = common.context_of(request)
    try:
        created = await console_actions.create_client(
            ctx, posted.origin(request), posted.fields.get("name", "")
        )
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return _secret(request, posted, "New client", created.client_id, "client_secret", created.client_secret)


async def _rotate_client(request: Request, client_id: str) -> Response:
    posted = await common.admin_form(request, "client.rotate_secret")
    if isinstance(posted, Response):
        return posted
    try:
        rotated = await console_actions.rotate_client_secret(
            common.context_of(request), posted.origin(request), client_id
        )
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return _secret(request, posted, "New client secret", rotated.id, "client_secret", rotated.secret)


@router.post("/console/endpoints/{endpoint_id}/enable")
async def enable_endpoint(request: Request, endpoint_id: str) -> Response:
    act = console_actions.enable_endpoint
    return await _act(request, "webhook.enable", endpoint_id, act, "/console/endpoints", "enabled")


@router.post("/console/endpoints/{endpoint_id}/rotate-secret")
async def rotate_endpoint(request: Request, endpoint_id: str) -> Response:
    posted = await common.admin_form(request, "webhook.rotate_secret")
    if isinstance(posted, Response):
        return posted
    try:
        rotated = await console_actions.rotate_endpoint_secret(
            common.context_of(request), posted.origin(request), endpoint_id
        )
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return _secret(request, posted, "New signing secret", endpoint_id, "webhook_secret", rotated["secret"])


def _secret(request: Request, posted: common.Posted, title: str, of: str, name: str, secret: str) -> Response:
    """Shown once, on this answer only (never in a URL); the page is not stored by the browser."""
    return common.render(request, "secret.html", title, posted.session, of=of, name=name, secret=secret)
