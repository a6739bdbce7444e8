"""The Link pages: choose an EMR, enter what it asks for, and hand the public token back: a redirect to
the client's callback_url (new window), a message to the opening page (lightbox), or the code shown
plainly. Every answer carries `guard.page_headers`; every form a CSRF token bound to the link session.
OAuth's two routes are in `oauth.py`."""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from emrtasks.domain import errors
from emrtasks.service import audit, link
from emrtasks.service.context import Context
from emrtasks.web import forms
from emrtasks.web.link import guard, words

LIGHTBOX = "lightbox"
WINDOW = "window"
SETTING_PREFIX = "s_"
"""Form fields that carry the EMR's settings, apart from ours (token, csrf, mode, emr, rules)."""
_MAX_FORM_BYTES = 64 * 1024

router = APIRouter(include_in_schema=False)
_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("emrtasks.web.link", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Page:
    """One Link session as a page sees it: what every template and form needs."""

    view: link.LinkView
    token: str
    mode: str
    csrf: str

    @property
    def lightbox(self) -> bool:
        return self.mode == LIGHTBOX

    def render(self, template: str, heading: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(
            template,
            status,
            self.view.allowed_origins,
            heading=heading,
            client_name=self.view.client_name,
            lightbox=self.lightbox,
            token=self.token,
            mode=self.mode,
            csrf=self.csrf,
            update_mode=self.view.update_mode,
            **values,
        )


def render(
    template: str, status: int, origins: tuple[str, ...], *, heading: str, **values: Any
) -> HTMLResponse:
    values.setdefault("client_name", None)
    values.setdefault("lightbox", False)
    html = _templates.get_template(template).render(
        heading=heading, origins_json=json.dumps(list(origins)), **values
    )
    return HTMLResponse(html, status_code=status, headers=guard.page_headers(origins))


def error_page(
    problem: errors.Problem, origins: tuple[str, ...] = (), lightbox: bool = False
) -> HTMLResponse:
    status = problem.status if 400 <= problem.status < 600 else 400
    return render(
        "error.html",
        status,
        origins,
        heading="This link cannot be used",
        message=problem.message,
        lightbox=lightbox,
    )


def redirect(url: str, origins: tuple[str, ...]) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=guard.page_headers(origins))


def context_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def origin_of(request: Request) -> audit.Origin:
    """Where a Link page's request came from, for the audit trail (the service names the person)."""
    source = request.client.host if request.client else None
    rid = request.scope.get(_REQUEST_ID_KEY)  # set by the app's X-Request-Id middleware
    return audit.Origin(audit.LINK_USER, None, source_address=source, request_id=rid)


_REQUEST_ID_KEY = "emrtasks.request_id"


def mode_of(text: str | None) -> str:
    return LIGHTBOX if text == LIGHTBOX else WINDOW


async def open_page(request: Request, token: str, mode: str) -> Page:
    """The session behind the link token (Problem 400 when it cannot be used)."""
    view = await link.open_link(context_of(request), token)
    key: bytes = request.app.state.link_form_key
    return Page(view, token, mode, guard.csrf_token(key, view.link_id))


# --- GET /link: the catalogue, or the chosen EMR's form -----------------------------------------------


@router.get("/link")
async def show_link(request: Request) -> Response:
    query = request.query_params
    mode = mode_of(query.get("mode"))
    try:
        page = await open_page(request, query.get("token", ""), mode)
    except errors.Problem as problem:
        return error_page(problem, lightbox=mode == LIGHTBOX)
    entries = await link.catalogue(context_of(request))
    chosen = page.view.preselected_emr or query.get("emr")
    entry = find(entries, chosen)
    if entry is None:
        message = f"There is no EMR called {chosen!r} here: choose yours below." if chosen else None
        return show_choices(page, entries, message, status=400 if chosen else 200)
    if not entry.available:
        return show_choices(page, entries, f"{entry.title}: {words.UNAVAILABLE}", status=400)
    return show_form(page, entry)


def find(entries: list[link.CatalogueEntry], name: str | None) -> link.CatalogueEntry | None:
    return next((e for e in entries if e.name == name), None)


def show_choices(
    page: Page, entries: list[link.CatalogueEntry], message: str | None, status: int = 200
) -> HTMLResponse:
    asks = {e.name: words.asks(e) for e in entries}
    return page.render(
        "choose.html",
        "Which EMR does your clinic use?",
        status,
        entries=entries,
        asks=asks,
        message=message,
        unavailable=words.UNAVAILABLE,
    )


def show_form(
    page: Page,
    entry: link.CatalogueEntry,
    values: dict[str, str] | None = None,
    rules: str | None = None,
    message: str | None = None,
    tries_left: int | None = None,
    status: int = 200,
) -> HTMLResponse:
    oauth = entry.method == "oauth"
    shown = {f.name: v for f, v in prefill(page, entry, values or {}) if not f.secret}
    choose_url = None
    if not page.view.preselected_emr:
        choose_url = "/link?" + urlencode({"token": page.token, "mode": page.mode})
    verb = "Sign in again to" if page.view.update_mode else "Connect"
    required = [f for f in entry.fields if f.required]
    optional = [f for f in entry.fields if not f.required]
    first = required[0].name if required else "rules" if len(entry.rule_sets) > 1 else None
    return page.render(
        "form.html",
        f"{verb} {entry.title}",
        status,
        entry=entry,
        required=required,
        optional=optional,
        optional_open=any(shown.get(f.name) for f in optional),
        first=first,
        titles={f.name: words.title(f.name) for f in entry.fields},
        values=shown,
        rules=rules or entry.default_rules,
        action="/link/oauth/start" if oauth else "/link/credentials",
        submit=f"Continue to {entry.title}" if oauth else "Connect",
        choose_url=choose_url,
        message=message,
        tries_left=tries_left,
    )


def prefill(
    page: Page, entry: link.CatalogueEntry, values: dict[str, str]
) -> list[tuple[link.FormField, str]]:
    """What the clinic typed (secrets never), or the instance the client app named for it."""
    domain = page.view.instance_domain
    found = []
    for field in entry.fields:
        value = values.get(field.name, "")
        if not value and domain and field.name == "base_url":
            value = domain if "://" in domain else f"https://{domain}"
        found.append((field, value))
    return found


# --- the forms -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    page: Page
    fields: dict[str, str]

    @property
    def emr(self) -> str:
        return self.fields.get("emr", "")

    @property
    def rules(self) -> str | None:
        return self.fields.get("rules") or None

    def settings(self) -> dict[str, str]:
        prefix = SETTING_PREFIX
        return {k[len(prefix) :]: v for k, v in self.fields.items() if k.startswith(prefix)}


async def posted_form(request: Request) -> Posted | HTMLResponse:
    """The form, its link session and a valid CSRF token; otherwise the page that says what is wrong."""
    fields = await read_form(request)
    mode = mode_of(fields.get("mode") if fields else None)
    if fields is None:
        return error_page(
            bad_form("This form could not be read. Open the link again."), lightbox=mode == LIGHTBOX
        )
    try:
        page = await open_page(request, fields.get("token", ""), mode)
    except errors.Problem as problem:
        return error_page(problem, lightbox=mode == LIGHTBOX)
    key: bytes = request.app.state.link_form_key
    if not guard.csrf_matches(key, page.view.link_id, fields.get("csrf")):
        forged = errors.Problem(
            403, "invalid_csrf", "This form was not sent from the Link page. Open the link again."
        )
        return error_page(forged, page.view.allowed_origins, page.lightbox)
    return Posted(page, fields)


def bad_form(message: str) -> errors.Problem:
    return errors.Problem(400, "invalid_form", message)


async def read_form(request: Request) -> dict[str, str] | None:
    return await forms.read_form(request, _MAX_FORM_BYTES)


@router.post("/link/choose")
async def choose(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, HTMLResponse):
        return posted
    page = posted.page
    query = {"token": page.token, "mode": page.mode, "emr": posted.emr}
    return redirect("/link?" + urlencode(query), page.view.allowed_origins)


@router.post("/link/credentials")
async def submit_credentials(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, HTMLResponse):
        return posted
    page, values = posted.page, posted.settings()
    entry = await chosen_entry(request, posted)
    if isinstance(entry, HTMLResponse):
        return entry
    try:
        result = await link.submit_credentials(
            context_of(request), page.token, entry.name, posted.rules, values, origin=origin_of(request)
        )
    except errors.Problem as problem:
        return refused(page, entry, posted, problem.message, None, problem)
    if not result.ok:
        return refused(page, entry, posted, result.message or link.REFUSED, result.tries_left)
    return success(page.view, result, page.lightbox)


async def chosen_entry(request: Request, posted: Posted) -> link.CatalogueEntry | HTMLResponse:
    entries = await link.catalogue(context_of(request))
    entry = find(entries, posted.page.view.preselected_emr or posted.emr)
    if entry is None:
        return show_choices(posted.page, entries, "Choose your EMR first.", status=400)
    return entry


def refused(
    page: Page,
    entry: link.CatalogueEntry,
    posted: Posted,
    message: str,
    tries_left: int | None,
    problem: errors.Problem | None = None,
) -> HTMLResponse:
    if problem is not None and problem.error == link.INVALID_LINK_TOKEN:
        return error_page(problem, page.view.allowed_origins, page.lightbox)  # no tries left, or used
    status = problem.status if problem is not None else 400
    return show_form(page, entry, posted.settings(), posted.rules, message, tries_left, status)


def success(view: link.LinkView, result: link.LinkResult, lightbox: bool) -> Response:
    """New window: back to the client's callback_url; lightbox: the page tells its opener; else shown."""
    if result.redirect_url and not lightbox:
        return redirect(result.redirect_url, view.allowed_origins)
    return render(
        "done.html",
        200,
        view.allowed_origins,
        heading="Connected",
        client_name=view.client_name,
        lightbox=lightbox,
        public_token=result.public_token,
    )
