"""Tasks: found by client, connection, status and time; a task's page is its timeline. Admins resend
an event from there, or retry a task that ended `unknown` (confirmed, with a reason)."""

from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emrtasks.domain import errors, ids
from emrtasks.service import console, console_actions
from emrtasks.web.console import common

router = APIRouter(include_in_schema=False)

DONE = {
    "resent": "The event was scheduled again for every active endpoint: its new attempt appears below.",
    "retried": "The task was queued again. Its first attempt looks it up in the EMR before any write.",
    "retried_blind": "The task was queued again. This EMR cannot look a task up, so it will be written.",
}


@router.get("/console/tasks")
async def list_tasks(request: Request) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    query = request.query_params
    shown = {k: query.get(k, "") for k in ("client_id", "connection_id", "status", "since", "until")}
    try:
        wanted = _filter(shown)
        found = await console.find_tasks(common.context_of(request), wanted)
    except errors.Problem as problem:
        return common.render(
            request,
            "tasks.html",
            "Tasks",
            session,
            400,
            tasks=[],
            shown=shown,
            message=problem.message,
            statuses=console.STATUSES,
            limit=console.TASK_LIMIT,
        )
    return common.render(
        request,
        "tasks.html",
        "Tasks",
        session,
        tasks=found,
        shown=shown,
        message=None,
        statuses=console.STATUSES,
        limit=console.TASK_LIMIT,
    )


def _filter(shown: dict[str, str]) -> console.TaskFilter:
    return console.TaskFilter(
        client_id=shown["client_id"].strip() or None,
        connection_id=shown["connection_id"].strip() or None,
        status=shown["status"] or None,
        since=_moment(shown["since"], "From"),
        until=_moment(shown["until"], "Until"),
    )


def _moment(text: str, name: str) -> datetime | None:
    """A `datetime-local` field's value, read as UTC."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise errors.Problem(
            400, "invalid_filter", f"{name}: give a time like 2026-12-04T09:30 (UTC)."
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get("/console/tasks/{task_id}")
async def show_task(request: Request, task_id: str) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    try:
        found = await console.timeline(
            common.context_of(request), common.origin_of(request, session), task_id
        )
    except errors.Problem as problem:
        return common.problem_page(request, session, problem)
    done = DONE.get(request.query_params.get("done", ""))
    return common.render(request, "task.html", f"Task {task_id}", session, t=found, done=done)


@router.post("/console/events/{event_id}/resend")
async def resend(request: Request, event_id: str) -> Response:
    posted = await common.admin_form(request, "event.resend")
    if isinstance(posted, Response):
        return posted
    try:
        await console_actions.resend_event(common.context_of(request), posted.origin(request), event_id)
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return common.redirect(_task_url(posted.fields.get("task_id", ""), "resent"))


@router.post("/console/tasks/{task_id}/retry")
async def retry(request: Request, task_id: str) -> Response:
    posted = await common.admin_form(request, console_actions.RETRY_ACTION)
    if isinstance(posted, Response):
        return posted
    if posted.fields.get("confirm") != "yes":
        unconfirmed = errors.Problem(
            400, "not_confirmed", "Tick the box to confirm you checked the EMR, then retry."
        )
        return common.problem_page(request, posted.session, unconfirmed)
    try:
        done = await console_actions.retry_unknown(
            common.context_of(request), posted.origin(request), task_id, posted.fields.get("reason", "")
        )
    except errors.Problem as problem:
        return common.problem_page(request, posted.session, problem)
    return common.redirect(_task_url(task_id, "retried" if done["looks_up_first"] else "retried_blind"))


def _task_url(task_id: str, done: str) -> str:
    if not ids.plausible(task_id):
        return "/console/tasks"
    return f"/console/tasks/{quote(task_id)}?done={done}"
