"""Signing in and out of the console. The sign-in form's CSRF token is bound to a random cookie the
sign-in page sets; a session's cookie replaces it once the password is right."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emrtasks.domain import errors
from emrtasks.service import audit, operators
from emrtasks.web.console import common, guard

router = APIRouter(include_in_schema=False)


@router.get("/console/login")
async def show_sign_in(request: Request) -> Response:
    if await common.signed_in(request) is not None:
        return common.redirect("/console")
    return _form(request, None, 200)


def _form(request: Request, message: str | None, status: int, email: str = "") -> Response:
    nonce = request.cookies.get(guard.SIGN_IN_COOKIE) or guard.new_nonce()
    answer = common.render(
        request,
        "login.html",
        "Sign in",
        None,
        status,
        sign_in_csrf=guard.csrf_token(common.key_of(request), nonce),
        message=message,
        email=email,
    )
    guard.set_cookie(answer, request, guard.SIGN_IN_COOKIE, nonce, max_age=3600)
    return answer


@router.post("/console/login")
async def sign_in(request: Request) -> Response:
    fields = await common.read_form(request) or {}
    nonce = request.cookies.get(guard.SIGN_IN_COOKIE, "")
    email = fields.get("email", "")[:254]
    if not nonce or not guard.csrf_matches(common.key_of(request), nonce, fields.get("csrf")):
        return _form(request, "This form expired or was not sent from this page: try again.", 403, email)
    origin = audit.Origin(
        audit.OPERATOR,
        None,
        source_address=common.source_of(request),
        request_id=request.scope.get("emrtasks.request_id"),
    )
    ctx, policy = common.context_of(request), common.policy_of(request)
    try:
        token, _session = await operators.sign_in(ctx, policy, email, fields.get("password", ""), origin)
    except errors.Problem as problem:
        answer = _form(request, problem.message, problem.status, email)
        answer.headers.update(dict(problem.headers or ()))
        return answer
    answer = common.redirect("/console")
    guard.set_cookie(answer, request, guard.SESSION_COOKIE, token, max_age=int(policy.max_seconds))
    guard.clear_cookie(answer, request, guard.SIGN_IN_COOKIE)
    return answer


@router.post("/console/logout")
async def sign_out(request: Request) -> Response:
    session = await common.signed_in(request)
    fields = await common.read_form(request) or {}
    if session is not None:
        if not guard.csrf_matches(common.key_of(request), session.session_id, fields.get("csrf")):
            return common.problem_page(request, session, common.FORGED)
        await operators.sign_out(common.context_of(request), session, common.origin_of(request, session))
    answer = common.redirect("/console/login")
    guard.clear_cookie(answer, request, guard.SESSION_COOKIE)
    return answer
