"""What every console page shares: the templates, the signed-in session (or the way to the sign-in
page), the posted form with its CSRF token checked, admin-only actions, and error pages."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from emrtasks.domain import errors
from emrtasks.service import audit, operators
from emrtasks.service.context import Context
from emrtasks.web import forms
from emrtasks.web.console import guard

MAX_FORM_BYTES = 16 * 1024
_REQUEST_ID_KEY = "emrtasks.request_id"  # set by the app's X-Request-Id middleware

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("emrtasks.web.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_templates.filters["when"] = when
_templates.filters["age"] = age


def context_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def policy_of(request: Request) -> operators.SessionPolicy:
    policy: operators.SessionPolicy = request.app.state.console_policy
    return policy


def key_of(request: Request) -> bytes:
    key: bytes = request.app.state.console_key
    return key


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def origin_of(request: Request, session: operators.Session) -> audit.Origin:
    return session.origin(source_of(request), request.scope.get(_REQUEST_ID_KEY))


def render(
    request: Request,
    template: str,
    title: str,
    session: operators.Session | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    csrf = guard.csrf_token(key_of(request), session.session_id) if session else None
    html = _templates.get_template(template).render(
        title=title, session=session, csrf=csrf, path=request.url.path, **values
    )
    return HTMLResponse(html, status_code=status, headers=guard.HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=guard.HEADERS)


def problem_page(
    request: Request, session: operators.Session | None, problem: errors.Problem
) -> HTMLResponse:
    status = problem.status if 400 <= problem.status < 600 else 400
    headers = dict(problem.headers or ())
    answer = render(request, "error.html", "Not done", session, status, message=problem.message)
    answer.headers.update(headers)
    return answer


async def signed_in(request: Request) -> operators.Session | None:
    token = request.cookies.get(guard.SESSION_COOKIE)
    return await operators.session_of(context_of(request), policy_of(request), token)


async def viewer(request: Request) -> operators.Session | Response:
    """The signed-in operator, or the way to the sign-in page."""
    session = await signed_in(request)
    if session is None:
        return redirect("/console/login")
    return session


@dataclass(frozen=True)
class Posted:
    session: operators.Session
    fields: dict[str, str]

    def origin(self, request: Request) -> audit.Origin:
        return origin_of(request, self.session)


async def admin_form(request: Request, action: str) -> Posted | Response:
    """A form an admin posted from a console page; otherwise the page that says why not (the refusal
    is on the audit trail as `action`, outcome denied)."""
    session = await signed_in(request)
    if session is None:
        return redirect("/console/login")
    fields = await read_form(request)
    if fields is None:
        return problem_page(
            request, session, errors.Problem(400, "invalid_form", "This form could not be read.")
        )
    if not guard.csrf_matches(key_of(request), session.session_id, fields.get("csrf")):
        await audit.record(context_of(request), origin_of(request, session), action, outcome=audit.DENIED)
        return problem_page(request, session, FORGED)
    if not session.is_admin:
        await audit.record(context_of(request), origin_of(request, session), action, outcome=audit.DENIED)
        return problem_page(request, session, VIEWERS_CANNOT_ACT)
    return Posted(session, fields)


FORGED = errors.Problem(
    403, "invalid_csrf", "This form was not sent from a console page. Go back, reload and try again."
)
VIEWERS_CANNOT_ACT = errors.Problem(
    403, "forbidden", "Your role is viewer: you can look at everything here, but only an admin can act."
)


async def read_form(request: Request) -> dict[str, str] | None:
    return await forms.read_form(request, MAX_FORM_BYTES)
