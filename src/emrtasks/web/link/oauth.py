"""Link for EMRs that grant access by consent: the form posts to `/link/oauth/start`, which sends the
browser to the EMR's authorization page; the EMR sends it back to `GET /link/oauth/callback`."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from emrtasks.domain import errors
from emrtasks.service import link
from emrtasks.web.link import pages

router = APIRouter(include_in_schema=False)
OAUTH_COOKIE = "emrtasks_link_oauth"
"""Carries the link token and mode across the EMR's consent page, so a refusal can offer the form again."""


@router.post("/link/oauth/start")
async def start_oauth(request: Request) -> Response:
    posted = await pages.posted_form(request)
    if isinstance(posted, HTMLResponse):
        return posted
    page = posted.page
    entry = await pages.chosen_entry(request, posted)
    if isinstance(entry, HTMLResponse):
        return entry
    ctx = pages.context_of(request)
    try:
        url = await link.start_oauth(ctx, page.token, entry.name, posted.rules, posted.settings())
    except errors.Problem as problem:
        return pages.refused(page, entry, posted, problem.message, None, problem)
    answer = pages.redirect(url, page.view.allowed_origins)
    answer.set_cookie(
        OAUTH_COOKIE,
        f"{page.mode}:{page.token}",
        max_age=int(link.LINK_TOKEN_TTL.total_seconds()),
        path=link.CALLBACK_PATH,
        secure=ctx.policy.public_url.startswith("https://"),
        httponly=True,
        samesite="lax",  # sent on the EMR's top-level redirect back to us, never on other sites' posts
    )
    return answer


@router.get(link.CALLBACK_PATH)
async def finish_oauth(request: Request) -> Response:
    query = request.query_params
    mode, token = _oauth_cookie(request)
    try:
        view, result = await link.finish_oauth(
            pages.context_of(request),
            query.get("state"),
            query.get("code"),
            query.get("error"),
            origin=pages.origin_of(request),
        )
    except errors.Problem as problem:
        return _forget(pages.error_page(problem, lightbox=mode == pages.LIGHTBOX))
    if result.ok:
        # The consent page may have dropped the cookie (a frame): without it, lightbox unless a callback.
        lightbox = mode == pages.LIGHTBOX if mode else not result.redirect_url
        return _forget(pages.success(view, result, lightbox))
    return await _oauth_refused(request, view, result, token, mode or pages.WINDOW)


async def _oauth_refused(
    request: Request, view: link.LinkView, result: link.LinkResult, token: str | None, mode: str
) -> Response:
    """The form again, when the cookie still names this session; else the refusal alone."""
    message = result.message or link.REFUSED
    try:
        page = await pages.open_page(request, token or "", mode)
    except errors.Problem:
        page = None
    if page is None or page.view.link_id != view.link_id:
        problem = errors.Problem(400, "oauth_refused", f"{message} Go back to the app and open Link again.")
        return _forget(pages.error_page(problem, view.allowed_origins, mode == pages.LIGHTBOX))
    entries = await link.catalogue(pages.context_of(request))
    entry = pages.find(entries, view.preselected_emr) if view.preselected_emr else None
    if entry is None:
        return pages.show_choices(page, entries, message, status=400)
    return pages.show_form(page, entry, message=message, tries_left=result.tries_left, status=400)


def _oauth_cookie(request: Request) -> tuple[str | None, str | None]:
    mode, _, token = request.cookies.get(OAUTH_COOKIE, "").partition(":")
    if not token.startswith("lt_"):
        return None, None
    return pages.mode_of(mode), token


def _forget(answer: Response) -> Response:
    answer.delete_cookie(OAUTH_COOKIE, path=link.CALLBACK_PATH)
    return answer
