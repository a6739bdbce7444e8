"""Link: a client app's way to get an access token for a clinic without an operator (Cobalt's flow).

A client makes a link token (`POST /v1/link/token/create`); the clinic opens the Link page with it,
picks its EMR and logs in (credentials, or OAuth consent); the login is checked for real (a token,
then the users and call types); the page hands back a public token, which the client exchanges once
for the connection's access token (`GET /v1/link/token/exchange`). Update mode repairs a
`login_required` connection and answers its existing access token again.

Public signatures (all async ones take the service `Context` first; every refusal is an
`errors.Problem`, which the API renders as the contract's error body):

- `create_link_token(ctx, origin: audit.Origin, client: tasks.Client, body: object) -> CreatedLinkToken`:
  the API's answer `{"success", "token", "expires_at", "link_url"}`; Problem 400 naming the field at fault.
- `exchange(ctx, origin: audit.Origin, client: tasks.Client, public_token: str | None) -> str`: the access
  token; Problem 400 `invalid_public_token` (unknown, expired, already exchanged) or `missing_field`, 401
  (another client's public token, which stays usable by its own client).
- `open_link(ctx, link_token: str) -> LinkView`: the session behind a link token; Problem 400
  `invalid_link_token` (unknown, expired, used, no tries left: each its own message).
- `catalogue(ctx) -> list[CatalogueEntry]`: every EMR a clinic can pick, the sandbox first.
- `submit_credentials(ctx, link_token: str, emr: str, rules: str | None, values: Mapping[str, str], *,
  origin: audit.Origin | None = None) -> LinkResult`: for `method == "credentials"`; `values` are the form's
  strings by field name (empty ones ignored). Problem 400 `invalid_settings` (each problem named),
  `emr_unavailable`, `oauth_required`, `emr_fixed` (update mode), `unknown_rules`, `invalid_link_token`. A
  refused login is `LinkResult(ok=False, message=REFUSED, tries_left=n)` (one try spent; the fifth refusal
  raises `invalid_link_token`); an EMR failing otherwise is `ok=False` with another message, no try spent.
  Success: `LinkResult(ok=True, public_token="pt_...", redirect_url=<callback_url?token=pt_...>|None)`.
  `origin` says where the page's request came from; the audit trail names the person by the link token's
  `user_id` (`connection.link`, `connection.relink`; a refused login is `denied`).
- `start_oauth(ctx, link_token: str, emr: str, rules: str | None, values: Mapping[str, str]) -> str`: for
  `method == "oauth"`: the authorization URL to redirect the browser to (the clinic's values are kept,
  encrypted, with the PKCE verifier until the callback). Problem 400 as above, plus `credentials_required`,
  `oauth_unavailable` (discovery failed).
- `finish_oauth(ctx, state: str | None, code: str | None, error: str | None, *, origin: audit.Origin | None
  = None) -> tuple[LinkView, LinkResult]`: at `GET /link/oauth/callback` with its query's `state`, `code`,
  `error`. Problem 400 `invalid_oauth_state` when the state belongs to no Link session (a state works once).
  A refused consent or code is `ok=False` with a message (the page offers a retry). Only the hash of a link
  token is stored, so `finish_oauth` cannot give the `lt_...` back: a page that offers a retry after the
  callback keeps the token in its own session (e.g. an HttpOnly cookie scoped to `/link`).
- `set_app(ctx, emr: str, config: Mapping[str, Any]) -> None`, `list_apps(ctx) -> list[dict]` (no secrets),
  `set_allowed_origins(ctx, client_id: str, origins: Sequence[str]) -> tuple[str, ...]`,
  `allowed_origins(ctx, client_id: str) -> tuple[str, ...]`, `check_origin(text: str) -> str` (normalised
  `scheme://host[:port]`; ValueError says why not).
- `redirect_uri(ctx) -> str`: `<EMRTASKS_PUBLIC_URL>/link/oauth/callback` (`CALLBACK_PATH`).
- Constants: `LINK_TOKEN_TTL`, `PUBLIC_TOKEN_TTL`, `MAX_TRIES` (5), `REFUSED` (the refusal text), and each
  refusal message (`UNKNOWN_LINK_TOKEN`, `EXPIRED_LINK_TOKEN`, ...).
- Types: `LinkView(link_id, client_name, allowed_origins, callback_url, preselected_emr, instance_domain,
  update_mode, tries_left, expires_at)`, `CatalogueEntry(name, title, rule_sets, default_rules, method,
  fields, available, unavailable_reason)`, `FormField(name, label, secret, required, kind)` (kind: text,
  integer, number, boolean, list), `LinkResult(ok, public_token, redirect_url, message, tries_left)`.

Secrets: link and public tokens are stored as hashes; the update-mode access token, the public
token's access token (until the exchange), the PKCE verifier and the clinic's values during an OAuth
round trip, and the deployment's app configs are encrypted. None of them is logged.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlencode, urlsplit

import httpx

from emrtasks import emr as registry
from emrtasks.domain import errors, ids, outcomes, validation
from emrtasks.domain import tasks as domain_tasks
from emrtasks.emr import base, oauth
from emrtasks.service import adapters, admin, audit, auth
from emrtasks.service.context import Context
from emrtasks.storage import clients, connections, crypto, db
from emrtasks.storage import link as stored_link
from emrtasks.webhooks import events

log = logging.getLogger("emrtasks.link")

LINK_TOKEN_TTL = timedelta(minutes=30)
PUBLIC_TOKEN_TTL = timedelta(minutes=10)
MAX_TRIES = 5
CALLBACK_PATH = "/link/oauth/callback"
REFUSED = "The EMR refused these credentials."
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_BODY_FIELDS = ("user_id", "org_id", "emr_name", "emr_instance_domain", "access_token", "callback_url")
_REFERENCE = "reference_id"
# Ids the client gives us and gets back in events: refused with control or format characters.
_IDENTIFIERS = frozenset({"user_id", "org_id", _REFERENCE})

INVALID_LINK_TOKEN = "invalid_link_token"  # noqa: S105 - a message
UNKNOWN_LINK_TOKEN = "Unknown link token. Ask the app for a new link."  # noqa: S105 - a message
EXPIRED_LINK_TOKEN = "This link token has expired (link tokens last 30 minutes). Ask the app for a new link."  # noqa: S105 - a message
USED_LINK_TOKEN = "This link token was already used: a link token works once. Ask the app for a new link."  # noqa: S105 - a message
SPENT_LINK_TOKEN = "This link has no tries left after 5 refused logins. Ask the app for a new link."  # noqa: S105 - a message
INVALID_PUBLIC_TOKEN = "invalid_public_token"  # noqa: S105 - a message
UNKNOWN_PUBLIC_TOKEN = "Unknown public token."  # noqa: S105 - a message
EXPIRED_PUBLIC_TOKEN = "This public token has expired (public tokens last 10 minutes). Run Link again."  # noqa: S105 - a message
USED_PUBLIC_TOKEN = "This public token was already exchanged: a public token works once."  # noqa: S105 - a message
FOREIGN_PUBLIC_TOKEN = "This public token was not issued to this client."  # noqa: S105 - a message
UNKNOWN_STATE = "This authorization belongs to no Link session (unknown or already used state)."


@dataclass(frozen=True)
class FormField:
    """One value the clinic enters on the Link page."""

    name: str
    label: str
    secret: bool
    required: bool
    kind: str
    """text, number, integer, boolean or list (a JSON list)."""


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    title: str
    rule_sets: tuple[str, ...]
    default_rules: str
    method: str
    """credentials (the page posts the values) or oauth (the page redirects to the EMR's consent)."""
    fields: tuple[FormField, ...]
    available: bool
    unavailable_reason: str | None


@dataclass(frozen=True)
class LinkView:
    link_id: str
    client_name: str
    allowed_origins: tuple[str, ...]
    callback_url: str | None
    preselected_emr: str | None
    instance_domain: str | None
    update_mode: bool
    """The connection's EMR is preselected and cannot be changed."""
    tries_left: int
    expires_at: datetime


class CreatedLinkToken(TypedDict):
    """`POST /v1/link/token/create`'s answer, sent as is."""

    success: bool
    token: str
    expires_at: str
    link_url: str


class ListedApp(TypedDict):
    """A deployment app as `emrtasks apps list` prints it: secret settings shown as `(set)`."""

    emr: str
    config: dict[str, object]
    updated: str


@dataclass(frozen=True)
class LinkResult:
    ok: bool
    public_token: str | None = None
    redirect_url: str | None = None
    """`callback_url?token=pt_...` for new-window mode; None without a callback_url."""
    message: str | None = None
    tries_left: int = 0


# --- the client's API ---------------------------------------------------------------------------------


async def create_link_token(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, body: object
) -> CreatedLinkToken:
    async with audit.changing(ctx, origin, "link_token.create") as change:
        return await _create_link_token(ctx, change, client, body)


async def _create_link_token(
    ctx: Context, change: audit.Change, client: domain_tasks.Client, body: object
) -> CreatedLinkToken:
    fields = _link_body(body)
    async with db.read(ctx.engine) as conn:
        origins = await stored_link.get_origins(conn, client.id)
        connection = await _update_mode_connection(conn, client, fields.get("access_token"))
    emr_name = fields.get("emr_name")
    if emr_name is not None:
        registry.module_for(emr_name)  # 400 unknown_emr
    if connection is not None:
        if emr_name is not None and emr_name != connection.emr:
            raise _field_problem(
                "emr_name", f"Invalid field: emr_name must be {connection.emr} in update mode."
            )
        emr_name = connection.emr
    callback = fields.get("callback_url")
    if callback is not None:
        _check_callback(callback, origins)
    token = ids.new_secret("lt")
    now = ctx.clock()
    expires = now + LINK_TOKEN_TTL
    access_token = fields.get("access_token")
    link_id = ids.new_id("link")
    change.targets["link_token_id"] = link_id
    change.targets["connection_id"] = connection.id if connection else None
    async with db.write(ctx.engine) as conn:
        await change.write(conn, now)
        await stored_link.insert_link_token(
            conn,
            id=link_id,
            token_hash=ids.hash_secret(token),
            client_id=client.id,
            user_id=fields["user_id"],
            org_id=fields["org_id"],
            emr=emr_name,
            instance_domain=fields.get("emr_instance_domain"),
            reference_id=fields.get(_REFERENCE),
            callback_url=callback,
            connection_id=connection.id if connection else None,
            access_token=(
                ctx.cipher.encrypt(access_token, _at("link_tokens", link_id, "access_token"))
                if connection and access_token
                else None
            ),
            tries=0,
            created_at=now,
            expires_at=expires,
        )
    return {
        "success": True,
        "token": token,
        "expires_at": _iso(expires),
        "link_url": f"{ctx.policy.public_url}/link?{urlencode({'token': token})}",
    }


async def exchange(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, public_token: str | None
) -> str:
    async with audit.changing(ctx, origin, "link_token.exchange") as change:
        return await _exchange(ctx, change, client, public_token)


async def _exchange(
    ctx: Context, change: audit.Change, client: domain_tasks.Client, public_token: str | None
) -> str:
    if not public_token:
        raise _field_problem("public_token", "Missing required parameter: public_token", "missing_field")
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        found = await stored_link.get_public_token(conn, ids.hash_secret(public_token))
        if found is None:
            raise errors.Problem(400, INVALID_PUBLIC_TOKEN, UNKNOWN_PUBLIC_TOKEN)
        if found.client_id != client.id:
            raise errors.unauthorized(FOREIGN_PUBLIC_TOKEN)
        if found.used_at is not None:
            raise errors.Problem(400, INVALID_PUBLIC_TOKEN, USED_PUBLIC_TOKEN)
        if found.expires_at <= now:
            raise errors.Problem(400, INVALID_PUBLIC_TOKEN, EXPIRED_PUBLIC_TOKEN)
        sealed = found.access_token
        if not sealed or not await stored_link.use_public_token(conn, found.id, now):
            raise errors.Problem(400, INVALID_PUBLIC_TOKEN, USED_PUBLIC_TOKEN)  # another exchange won
        change.targets["connection_id"] = found.connection_id
        await change.write(conn, now, connection_id=found.connection_id)
    auth.forget_connection(ctx, found.connection_id)
    return ctx.cipher.decrypt(sealed, _at("public_tokens", found.id, "access_token"))


def _link_body(body: object) -> dict[str, str]:
    if not isinstance(body, dict):
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.")
    extra = [str(k) for k in body if k not in (*_BODY_FIELDS, _REFERENCE)]
    if extra:
        raise errors.unexpected_fields(extra)
    fields: dict[str, str] = {}
    for name in (*_BODY_FIELDS, _REFERENCE):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or "\x00" in value:
            raise _field_problem(name, f"Invalid field: {name} must be a string.", "invalid_type")
        value = value.strip()
        limit = 2048 if name == "callback_url" else 255
        if len(value) > limit:
            raise _field_problem(
                name, f"Invalid field: {name} must be at most {limit} characters.", "too_long"
            )
        flaw = validation.identifier_flaw(value) if name in _IDENTIFIERS else None
        if flaw:
            raise _field_problem(name, f"Invalid field: {name} must not contain {flaw}.", "invalid_type")
        if value:
            fields[name] = value
    for name in ("user_id", "org_id"):
        if name not in fields:
            raise _field_problem(name, f"Missing required field: {name}", "missing_field")
    return fields


async def _update_mode_connection(
    conn: db.DbConnection, client: domain_tasks.Client, access_token: str | None
) -> domain_tasks.Connection | None:
    if access_token is None:
        return None
    found = await connections.get_by_token_hash(conn, ids.hash_secret(access_token))
    if found is None or found.client_id != client.id:
        raise _field_problem(
            "access_token", "Invalid field: access_token is not a connection of this client."
        )
    return found


def _check_callback(url: str, origins: Sequence[str]) -> None:
    try:
        origin = check_origin(url, path_allowed=True)
    except ValueError as exc:
        raise _field_problem("callback_url", f"Invalid field: callback_url {exc}.") from exc
    if origin not in origins:
        allowed = ", ".join(origins) if origins else "none yet"
        raise _field_problem(
            "callback_url",
            f"Invalid field: callback_url's origin {origin} is not one of this client's allowed origins "
            f"({allowed}; set them with `emrtasks clients update --allowed-origin`).",
        )


def check_origin(text: str, *, path_allowed: bool = False) -> str:
    """`scheme://host[:port]`, lower case: https, or http on loopback (development). ValueError says why."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("is not a valid URL") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an https:// URL")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise ValueError("must be https (http only on 127.0.0.1, ::1 or localhost)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if not path_allowed and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError("must be an origin: scheme, host and port only")
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}[parts.scheme]
    return f"{parts.scheme}://{shown}" + (f":{port}" if port and port != default else "")


# --- the Link page's service --------------------------------------------------------------------------


async def open_link(ctx: Context, link_token: str) -> LinkView:
    async with db.read(ctx.engine) as conn:
        row = await stored_link.get_link_token(conn, ids.hash_secret(link_token or ""))
        origins = await stored_link.get_origins(conn, row.client_id) if row else ()
    return _view(ctx, row, origins)


def _view(ctx: Context, row: stored_link.LinkToken | None, origins: tuple[str, ...]) -> LinkView:
    if row is None:
        raise errors.Problem(400, INVALID_LINK_TOKEN, UNKNOWN_LINK_TOKEN)
    if row.used_at is not None:
        raise errors.Problem(400, INVALID_LINK_TOKEN, USED_LINK_TOKEN)
    if row.expires_at <= ctx.clock():
        raise errors.Problem(400, INVALID_LINK_TOKEN, EXPIRED_LINK_TOKEN)
    if row.tries >= MAX_TRIES:
        raise errors.Problem(400, INVALID_LINK_TOKEN, SPENT_LINK_TOKEN)
    return LinkView(
        link_id=row.id,
        client_name=row.client_name,
        allowed_origins=origins,
        callback_url=row.callback_url,
        preselected_emr=row.emr,
        instance_domain=row.instance_domain,
        update_mode=row.connection_id is not None,
        tries_left=MAX_TRIES - row.tries,
        expires_at=row.expires_at,
    )


async def catalogue(ctx: Context) -> list[CatalogueEntry]:
    apps = await _apps(ctx)
    names = sorted(registry.MODULES, key=lambda n: (n != "sandbox", n))
    return [_entry(name, apps.get(name)) for name in names]


def _entry(name: str, app: Mapping[str, Any] | None) -> CatalogueEntry:
    module = registry.module_for(name)
    declared = _oauth_of(module, app)
    missing = [
        s.name
        for s in module.SETTINGS
        if s.held_by == base.DEPLOYMENT and s.required and s.default is None and not (app or {}).get(s.name)
    ]
    if declared is not None and not (app or {}).get("client_id"):
        missing = missing or ["client_id"]
    reason = (
        f"This deployment has no {module.TITLE} app configured yet (emrtasks apps set --emr {name})."
        if missing
        else None
    )
    return CatalogueEntry(
        name=name,
        title=module.TITLE,
        rule_sets=tuple(registry.rule_sets(name)),
        default_rules=module.DEFAULT_RULES,
        method="oauth" if declared is not None else "credentials",
        fields=tuple(_field(s) for s in module.SETTINGS if s.held_by == base.CLINIC),
        available=reason is None,
        unavailable_reason=reason,
    )


def _oauth_of(module: base.EmrModule, app: Mapping[str, Any] | None) -> base.OAuthEndpoints | None:
    declared: base.OAuthEndpoints | None = getattr(module, "OAUTH", None)
    if declared is not None and declared.when_configured and not (app or {}).get("oauth"):
        return None
    return declared


_KINDS = {str: "text", int: "integer", float: "number", bool: "boolean", list: "list"}


def _field(setting: base.Setting) -> FormField:
    return FormField(
        name=setting.name,
        label=setting.description,
        secret=setting.secret,
        required=setting.required and setting.default is None,
        kind=_KINDS.get(setting.kind, "text"),
    )


async def submit_credentials(
    ctx: Context,
    link_token: str,
    emr: str,
    rules: str | None,
    values: Mapping[str, str],
    *,
    origin: audit.Origin | None = None,
) -> LinkResult:
    emr_name = emr
    row, view = await _session(ctx, link_token)
    entry, app = await _chosen(ctx, row, emr_name)
    if entry.method != "credentials":
        raise errors.Problem(
            400, "oauth_required", f"{entry.title} is linked by signing in at the EMR (OAuth)."
        )
    chosen = adapters.rules_for(emr_name, rules).name
    config = {**_deployment_values(emr_name, app), **_clinic_values(entry, values)}
    _check(emr_name, config)
    return await _check_and_finish(ctx, _link_user(origin, row), row, view, emr_name, chosen, config)


def _link_user(origin: audit.Origin | None, row: stored_link.LinkToken) -> audit.Origin:
    """The person at the Link page, by the client's own id for them, acting for that client."""
    known = origin or audit.Origin(audit.LINK_USER, None)
    return replace(known, actor_type=audit.LINK_USER, actor_id=row.user_id, client_id=row.client_id)


async def start_oauth(
    ctx: Context, link_token: str, emr: str, rules: str | None, values: Mapping[str, str]
) -> str:
    emr_name = emr
    row, _ = await _session(ctx, link_token)
    entry, app = await _chosen(ctx, row, emr_name)
    module = registry.module_for(emr_name)
    declared = _oauth_of(module, app)
    if entry.method != "oauth" or declared is None:
        raise errors.Problem(
            400, "credentials_required", f"{entry.title} is linked with credentials, not OAuth."
        )
    chosen = adapters.rules_for(emr_name, rules).name
    clinic = _clinic_values(entry, values)
    config = {**_deployment_values(emr_name, app), **clinic}
    before_consent = [s for s in module.SETTINGS if s.held_by != base.OAUTH]
    problems = base.check_config(before_consent, config)
    if problems:
        raise errors.Problem(
            400, "invalid_settings", f"Invalid settings for {emr_name}: " + "; ".join(problems)
        )
    http = _http(ctx)
    try:
        authorize, token_url = await oauth.endpoints(declared, {**app, **config}, http)
    except oauth.OAuthError as exc:
        raise errors.Problem(400, "oauth_unavailable", str(exc)) from exc
    state, verifier = oauth.new_state(), oauth.new_verifier()
    session = {
        "verifier": verifier,
        "emr": emr_name,
        "rules": chosen,
        "values": clinic,
        "token_url": token_url,
    }
    async with db.write(ctx.engine) as conn:
        await stored_link.update_link_token(
            conn,
            row.id,
            oauth_state_hash=ids.hash_secret(state),
            oauth_session=ctx.cipher.encrypt(
                json.dumps(session), _at("link_tokens", row.id, "oauth_session")
            ),
        )
    return oauth.authorization_url(
        authorize,
        client_id=str(app.get("client_id") or ""),
        redirect_uri=redirect_uri(ctx),
        scopes=declared.scopes,
        state=state,
        verifier=verifier,
        audience=str(config.get("base_url")) if declared.smart_discovery else None,
    )


async def finish_oauth(
    ctx: Context,
    state: str | None,
    code: str | None,
    error: str | None,
    *,
    origin: audit.Origin | None = None,
) -> tuple[LinkView, LinkResult]:
    async with db.write(ctx.engine) as conn:
        state_hash = ids.hash_secret(state or "")
        row = await stored_link.get_link_token_by_state(conn, state_hash)
        # A state works once: a replayed callback, or one racing it, finds nothing.
        if row is None or not state or not row.oauth_session:
            raise errors.Problem(400, "invalid_oauth_state", UNKNOWN_STATE)
        if not await stored_link.take_oauth_state(conn, row.id, state_hash):
            raise errors.Problem(400, "invalid_oauth_state", UNKNOWN_STATE)
        origins = await stored_link.get_origins(conn, row.client_id)
    view = _view(ctx, row, origins)
    session = json.loads(ctx.cipher.decrypt(row.oauth_session, _at("link_tokens", row.id, "oauth_session")))
    if error or not code:
        said = error if error and len(error) <= 64 and error.replace("_", "").isalnum() else "no code"
        message = f"The EMR did not grant access ({said}). You can try again."
        return view, LinkResult(ok=False, message=message, tries_left=view.tries_left)
    emr_name: str = session["emr"]
    app = await _app(ctx, emr_name)
    module = registry.module_for(emr_name)
    declared = _oauth_of(module, app)
    if declared is None:
        raise errors.Problem(400, "oauth_unavailable", f"{module.TITLE} is no longer linked by OAuth here.")
    try:
        answer = await oauth.exchange_code(
            _http(ctx),
            session["token_url"],
            code=code,
            redirect_uri=redirect_uri(ctx),
            client_id=str(app.get("client_id") or ""),
            client_secret=app.get("client_secret"),
            verifier=session["verifier"],
            secret_in_body=declared.secret_in_body,
        )
    except oauth.OAuthError as exc:
        return view, LinkResult(ok=False, message=f"{exc} You can try again.", tries_left=view.tries_left)
    config = {
        **_deployment_values(emr_name, app),
        **session["values"],
        **oauth.credentials_from(declared, answer),
    }
    _check(emr_name, config)
    linker = _link_user(origin, row)
    return view, await _check_and_finish(ctx, linker, row, view, emr_name, session["rules"], config)


def redirect_uri(ctx: Context) -> str:
    return ctx.policy.public_url + CALLBACK_PATH


async def _session(ctx: Context, link_token: str) -> tuple[stored_link.LinkToken, LinkView]:
    async with db.read(ctx.engine) as conn:
        row = await stored_link.get_link_token(conn, ids.hash_secret(link_token or ""))
        origins = await stored_link.get_origins(conn, row.client_id) if row else ()
    view = _view(ctx, row, origins)
    assert row is not None
    return row, view


async def _chosen(
    ctx: Context, row: stored_link.LinkToken, emr_name: str
) -> tuple[CatalogueEntry, dict[str, Any]]:
    if row.emr and row.connection_id and emr_name != row.emr:
        raise errors.Problem(400, "emr_fixed", f"This link repairs a {row.emr} connection; choose {row.emr}.")
    app = await _app(ctx, emr_name)
    entry = _entry(emr_name, app)
    if not entry.available:
        raise errors.Problem(400, "emr_unavailable", entry.unavailable_reason or "Not available.")
    return entry, app


def _clinic_values(entry: CatalogueEntry, values: Mapping[str, str]) -> dict[str, Any]:
    """The clinic's form values as the settings' kinds; anything not on its form is refused."""
    fields = {f.name: f for f in entry.fields}
    problems = [f"unknown setting: {name}" for name in values if name not in fields]
    found: dict[str, Any] = {}
    for name, text in values.items():
        field = fields.get(name)
        if field is None or text is None or not str(text).strip():
            continue
        try:
            found[name] = _typed(field.kind, str(text).strip())
        except ValueError:
            problems.append(f"{name} must be {_KIND_WORDS[field.kind]}")
    if problems:
        raise errors.Problem(
            400, "invalid_settings", f"Invalid settings for {entry.name}: " + "; ".join(problems)
        )
    return found


_KIND_WORDS = {
    "text": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "list": "a JSON list",
}


def _typed(kind: str, text: str) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "boolean":
        if text.lower() not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "on", "yes", "1")
    if kind == "list":
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError(text)
        return parsed
    return text


def _deployment_values(emr_name: str, app: Mapping[str, Any]) -> dict[str, Any]:
    held = {s.name for s in registry.module_for(emr_name).SETTINGS if s.held_by == base.DEPLOYMENT}
    return {k: v for k, v in app.items() if k in held}


def _check(emr_name: str, config: Mapping[str, Any]) -> None:
    problems = adapters.check_limits(config) + registry.module_for(emr_name).check_config(config)
    if problems:
        raise errors.Problem(
            400, "invalid_settings", f"Invalid settings for {emr_name}: " + "; ".join(problems)
        )


async def _check_and_finish(
    ctx: Context,
    origin: audit.Origin,
    row: stored_link.LinkToken,
    view: LinkView,
    emr_name: str,
    rules: str,
    config: dict[str, Any],
) -> LinkResult:
    """The real login check (a token, users, call types), then the connection and the public token.
    Either way the audit trail records it (`connection.link`, or `connection.relink` in update mode),
    in the transaction that spends the try or makes the connection."""
    rotated: dict[str, Any] = {}
    checked = await _check_login(ctx, emr_name, rules, config, rotated)
    change = audit.Change(
        origin,
        "connection.relink" if row.connection_id else "connection.link",
        {"link_token_id": row.id, "connection_id": row.connection_id, "emr": emr_name},
    )
    if isinstance(checked, str):
        return await _refused(ctx, change, row, view, checked)
    config = {**config, **rotated}  # a refresh token spent by the check is replaced by the new one
    return await _finish(ctx, change, row, emr_name, rules, config, checked)


async def _check_login(
    ctx: Context, emr_name: str, rules: str, config: dict[str, Any], rotated: dict[str, Any]
) -> adapters.Directory | str:
    """The directory read with these values, or the refusal: REFUSED for a refused login, another
    message for an EMR that failed otherwise."""

    async def keep(_connection_id: str, changes: dict[str, Any]) -> None:
        rotated.update({k: v for k, v in changes.items() if v is not None})

    probe = domain_tasks.Connection(
        id="link_check",
        client_id="",
        emr=emr_name,
        rules=rules,
        reference_id=None,
        status=domain_tasks.CONNECTION_ACTIVE,
        settings={},
    )
    try:
        adapter = ctx.adapters.for_unsaved(probe, config, keep)
        users = await adapter.list_users()
        call_types = await adapter.list_call_types()
    except outcomes.AdapterError as exc:
        if exc.outcome.code == outcomes.LOGIN_REQUIRED:
            return REFUSED
        log.info("link check of %s failed: %s", emr_name, exc.outcome.code)
        return f"The EMR could not be reached to check this login ({exc.outcome.code}). Please try again."
    except (httpx.HTTPError, OSError) as exc:
        log.info("link check of %s failed: %s", emr_name, type(exc).__name__)
        return f"The EMR could not be reached to check this login ({type(exc).__name__}). Please try again."
    return adapters.Directory({u.id: u for u in users}, {c.id: c for c in call_types})


async def _refused(
    ctx: Context, change: audit.Change, row: stored_link.LinkToken, view: LinkView, message: str
) -> LinkResult:
    if message != REFUSED:
        return LinkResult(ok=False, message=message, tries_left=view.tries_left)
    async with db.write(ctx.engine) as conn:
        tries = await stored_link.spend_try(conn, row.id, MAX_TRIES)
        await change.write(conn, ctx.clock(), outcome=audit.DENIED, connection_id=row.connection_id)
    if tries is None:
        raise errors.Problem(400, INVALID_LINK_TOKEN, SPENT_LINK_TOKEN)
    left = MAX_TRIES - tries
    if left == 0:
        raise errors.Problem(400, INVALID_LINK_TOKEN, f"{REFUSED} {SPENT_LINK_TOKEN}")
    return LinkResult(ok=False, message=REFUSED, tries_left=left)


async def _finish(
    ctx: Context,
    change: audit.Change,
    row: stored_link.LinkToken,
    emr_name: str,
    rules: str,
    config: dict[str, Any],
    found: adapters.Directory,
) -> LinkResult:
    now = ctx.clock()
    connection_id = row.connection_id or ids.new_id("conn")
    public, credentials = admin.split_config(ctx, emr_name, config, connection_id)
    public_token, public_id = ids.new_secret("pt"), ids.new_id("pub")
    async with db.write(ctx.engine) as conn:
        if not await stored_link.use_link_token(conn, row.id, now):
            raise errors.Problem(400, INVALID_LINK_TOKEN, USED_LINK_TOKEN)
        if row.connection_id:
            assert row.access_token is not None  # update mode keeps the token of the link it repairs
            access_token = ctx.cipher.decrypt(row.access_token, _at("link_tokens", row.id, "access_token"))
            old = await connections.get_connection(conn, connection_id)
            limits = {
                k: v for k, v in (old.settings if old else {}).items() if k in adapters.CONNECTION_LIMITS
            }
            public = {**public, **limits}  # the operator's limits on this connection stay
            await connections.update_connection(
                conn,
                connection_id,
                now,
                status=domain_tasks.CONNECTION_ACTIVE,
                settings=public,
                credentials=credentials,
                **({"reference_id": row.reference_id} if row.reference_id else {}),
            )
        else:
            access_token = ids.new_secret("at")
            if await clients.get_client_with_hash(conn, row.client_id) is None:
                raise errors.not_found("Client")
            connection = domain_tasks.Connection(
                id=connection_id,
                client_id=row.client_id,
                emr=emr_name,
                rules=rules,
                reference_id=row.reference_id,
                status=domain_tasks.CONNECTION_ACTIVE,
                settings=public,
                credentials=credentials,
            )
            await connections.insert_connection(
                conn, connection=connection, token_hash=ids.hash_secret(access_token), now=now
            )
        await connections.save_directory(conn, connection_id, *_directory_rows(found), now)
        await stored_link.insert_public_token(
            conn,
            id=public_id,
            token_hash=ids.hash_secret(public_token),
            link_token_id=row.id,
            client_id=row.client_id,
            connection_id=connection_id,
            access_token=ctx.cipher.encrypt(access_token, _at("public_tokens", public_id, "access_token")),
            created_at=now,
            expires_at=now + PUBLIC_TOKEN_TTL,
        )
        change.targets["connection_id"] = connection_id
        await change.write(conn, now, connection_id=connection_id)
    auth.forget_connection(ctx, connection_id)
    redirect = None
    if row.callback_url:
        separator = "&" if urlsplit(row.callback_url).query else "?"
        redirect = row.callback_url + separator + urlencode({"token": public_token})
    return LinkResult(
        ok=True, public_token=public_token, redirect_url=redirect, tries_left=MAX_TRIES - row.tries
    )


def _directory_rows(found: adapters.Directory) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    users = [{"id": u.id, "name": u.name, "kind": u.kind} for u in found.users.values()]
    call_types = [{"id": c.id, "name": c.name} for c in found.call_types.values()]
    return users, call_types


def _http(ctx: Context) -> httpx.AsyncClient:
    http = ctx.adapters.deps.http
    if http is None:
        raise errors.unavailable("No HTTP client is configured for EMR calls.")
    return http


# --- the deployment's apps and the clients' origins (CLI) --------------------------------------------


async def set_app(ctx: Context, emr_name: str, config: Mapping[str, Any]) -> None:
    """The deployment's app at an EMR vendor: its deployment-held settings (client id and secret),
    `oauth` (athenahealth: link by consent), `oauth_authorize_url`/`oauth_token_url` overrides."""
    module = registry.module_for(emr_name)
    held = {s.name: s for s in module.SETTINGS if s.held_by == base.DEPLOYMENT}
    extras = {"oauth": bool, "oauth_authorize_url": str, "oauth_token_url": str}
    problems = [f"unknown app setting: {k}" for k in config if k not in held and k not in extras]
    problems += [
        f"{k} must be {extras[k].__name__}"
        for k in config
        if k in extras and not isinstance(config[k], extras[k])
    ]
    own = {k: v for k, v in config.items() if k in held}
    problems += [
        p for p in base.check_config(list(held.values()), own) if not p.startswith("missing setting")
    ]
    if problems:
        raise errors.Problem(
            400, "invalid_settings", f"Invalid app config for {emr_name}: " + "; ".join(problems)
        )
    async with db.write(ctx.engine) as conn:
        sealed = ctx.cipher.encrypt(json.dumps(dict(config)), _at("deployment_apps", emr_name, "config"))
        await stored_link.set_app(conn, emr_name, sealed, ctx.clock())


async def list_apps(ctx: Context) -> list[ListedApp]:
    """Each configured app: its EMR, which settings it holds (names only), and its non-secret values."""
    async with db.read(ctx.engine) as conn:
        found = await stored_link.list_apps(conn)
    listed: list[ListedApp] = []
    for name, (sealed, updated) in found.items():
        config = json.loads(ctx.cipher.decrypt(sealed, _at("deployment_apps", name, "config")))
        secret = {s.name for s in registry.module_for(name).SETTINGS if s.secret}
        shown = {k: ("(set)" if k in secret else v) for k, v in config.items()}
        listed.append({"emr": name, "config": shown, "updated": _iso(updated)})
    return listed


async def _apps(ctx: Context) -> dict[str, dict[str, Any]]:
    async with db.read(ctx.engine) as conn:
        found = await stored_link.list_apps(conn)
    return {
        name: json.loads(ctx.cipher.decrypt(sealed, _at("deployment_apps", name, "config")))
        for name, (sealed, _u) in found.items()
    }


async def _app(ctx: Context, emr_name: str) -> dict[str, Any]:
    async with db.read(ctx.engine) as conn:
        sealed = await stored_link.get_app(conn, emr_name)
    where = _at("deployment_apps", emr_name, "config")
    found: dict[str, Any] = json.loads(ctx.cipher.decrypt(sealed, where)) if sealed else {}
    return found


async def set_allowed_origins(ctx: Context, client_id: str, origins: Sequence[str]) -> tuple[str, ...]:
    checked = []
    for origin in origins:
        try:
            checked.append(check_origin(origin))
        except ValueError as exc:
            raise errors.Problem(
                400, "invalid_origin", f"Invalid allowed origin {origin!r}: it {exc}."
            ) from exc
    unique = tuple(sorted(set(checked)))
    async with db.write(ctx.engine) as conn:
        if await clients.get_client_with_hash(conn, client_id) is None:
            raise errors.not_found("Client")
        await stored_link.set_origins(conn, client_id, unique, ctx.clock())
    return unique


async def allowed_origins(ctx: Context, client_id: str) -> tuple[str, ...]:
    async with db.read(ctx.engine) as conn:
        return await stored_link.get_origins(conn, client_id)


def _field_problem(name: str, message: str, code: str = "invalid_field") -> errors.Problem:
    error = {"missing_field": "missing_field", "too_long": "limit_exceeded"}.get(code, "invalid_field")
    return errors.Problem(400, error, message, (errors.FieldError(name, code, message),))


def _iso(moment: datetime) -> str:
    return events.iso(moment)


def _at(table: str, row: str, column: str) -> crypto.Where:
    """Where an encrypted Link value lives: what its ciphertext is bound to."""
    return crypto.Where(table, row, column)
