"""What every HTTP adapter shares: calling a vendor, turning its failures into outcomes, OAuth2 tokens.

The split follows httpx's exception tree: a request that never left (connect errors, pool timeouts)
is safe to retry; one that may have reached the EMR (read timeouts, a dropped connection, a 500, 502
or 504 to a write) is `Unknown`, to be looked up by marker before anything is retried.
"""

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from emrtasks.domain import outcomes
from emrtasks.emr import base, signing

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_AMBIGUOUS_STATUS = frozenset({500, 502, 504})


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None


def transport_outcome(exc: httpx.HTTPError, *, write: bool) -> outcomes.RetryLater | outcomes.Unknown:
    if isinstance(exc, _NOT_SENT) or not write:
        return outcomes.RetryLater(
            outcomes.EMR_UNAVAILABLE, f"The EMR could not be reached ({type(exc).__name__})."
        )
    return outcomes.Unknown(
        outcomes.OUTCOME_UNKNOWN, f"The EMR did not answer after the request was sent ({type(exc).__name__})."
    )


def _unreachable(exc: httpx.HTTPError) -> outcomes.RetryLater:
    return outcomes.RetryLater(
        outcomes.EMR_UNAVAILABLE, f"The EMR could not be reached ({type(exc).__name__})."
    )


def status_outcome(response: httpx.Response, *, write: bool, detail: str = "") -> outcomes.Outcome | None:
    """The outcome a vendor's error status means in general; None for 2xx. Adapters map the rest."""
    status = response.status_code
    if status < 400:
        return None
    said = f": {detail}" if detail else ""
    if status == 429:
        return outcomes.RetryLater(
            outcomes.EMR_RATE_LIMITED, f"The EMR is rate limiting{said}", retry_after(response)
        )
    if status in (401, 403):
        return outcomes.Rejected(
            outcomes.LOGIN_REQUIRED, f"The EMR refused the connection's credentials{said}"
        )
    if status == 503 or (status >= 500 and not write):
        return outcomes.RetryLater(
            outcomes.EMR_UNAVAILABLE, f"The EMR is unavailable (HTTP {status}){said}", retry_after(response)
        )
    if status in _AMBIGUOUS_STATUS or status >= 500:
        return outcomes.Unknown(
            outcomes.OUTCOME_UNKNOWN, f"The EMR failed while writing (HTTP {status}){said}"
        )
    return outcomes.Rejected(outcomes.EMR_REJECTED, f"The EMR refused the task (HTTP {status}){said}")


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or `base.BadAnswer` naming what came instead (HTML from a proxy, a cut body)."""
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
        what = "an empty body" if not response.content else f"a body that is not JSON ({kind})"
        raise base.BadAnswer(response.status_code, what) from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; any other JSON (a list, a string, null) is a `base.BadAnswer`."""
    body = json_body(response)
    if not isinstance(body, dict):
        raise base.BadAnswer(response.status_code, f"JSON {type(body).__name__} where an object was due")
    return body


def error_fields(response: httpx.Response) -> set[str]:
    """The top-level keys of a JSON error answer (the fields a REST API names as invalid), or none."""
    try:
        body = response.json()
    except ValueError:
        return set()
    return set(body) if isinstance(body, dict) else set()


def raise_for_read(response: httpx.Response, detail: str = "") -> None:
    """For reads (patients, users): any failure becomes an AdapterError the job understands."""
    outcome = status_outcome(response, write=False, detail=detail)
    if isinstance(outcome, outcomes.Rejected | outcomes.RetryLater):
        raise outcomes.AdapterError(outcome)


@dataclass
class Token:
    value: str
    expires_at: float


class OAuth2ClientCredentials:
    """An OAuth2 client-credentials token (RFC 6749 §4.4), fetched once, cached until shortly before
    it expires, and fetched again at once when the EMR answers 401 to it."""

    refused = "The EMR refused the connection's client credentials."

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        extra: dict[str, str] | None = None,
        basic_auth: bool = True,
    ) -> None:
        self._http = http
        self._url = token_url
        self._form = {
            "grant_type": "client_credentials",
            **({"scope": scope} if scope else {}),
            **(extra or {}),
        }
        self._auth: httpx.BasicAuth | None = httpx.BasicAuth(client_id, client_secret) if basic_auth else None
        if not basic_auth:
            self._form |= {"client_id": client_id, "client_secret": client_secret}
        self._token: Token | None = None

    async def header(self) -> dict[str, str]:
        if self._token is None or self._token.expires_at <= time.monotonic():
            self._token = await self._fetch()
        return {"authorization": f"Bearer {self._token.value}"}

    def forget(self) -> None:
        self._token = None

    async def _post(self) -> httpx.Response:
        """The token request itself (subclasses authenticate the client their own way)."""
        if self._auth is None:
            return await self._http.post(self._url, data=self._form)
        return await self._http.post(self._url, data=self._form, auth=self._auth)

    async def _fetch(self) -> Token:
        try:
            response = await self._post()
        except httpx.HTTPError as exc:
            raise outcomes.AdapterError(_unreachable(exc)) from exc
        if response.status_code in (400, 401, 403):
            raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, self.refused))
        raise_for_read(response)
        return token_from(response)


def token_from(response: httpx.Response) -> Token:
    """An OAuth2 token answer (RFC 6749 §5.1); one we cannot read is the EMR's error, and nothing was
    written yet, so the call that needed it is safe to try again later."""
    try:
        body = json_object(response)
        value, lifetime = str(body["access_token"]), float(body.get("expires_in", 300))
    except (base.BadAnswer, KeyError, TypeError, ValueError) as exc:
        what = (
            exc.what if isinstance(exc, base.BadAnswer) else f"no usable access_token ({type(exc).__name__})"
        )
        raise outcomes.AdapterError(
            outcomes.RetryLater(outcomes.EMR_ERROR, f"The EMR's token endpoint answered {what}.")
        ) from exc
    return Token(value, time.monotonic() + max(lifetime - 30, lifetime / 2))


class ClientAssertion(OAuth2ClientCredentials):
    """SMART Backend Services client authentication (`private_key_jwt`): every token request carries a
    new JWT signed with the deployment's current key, and no secret
    (https://hl7.org/fhir/smart-app-launch/backend-services.html#step-3-access-token-request)."""

    refused = "The EMR refused the deployment's signed client assertion (is our JWKS URL registered?)."

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        signer: signing.Signer,
        *,
        scope: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # The form without client credentials: the signed assertion names the client (iss, sub).
        super().__init__(http, token_url, client_id, "", scope=scope)
        self._client_id = client_id
        self._signer = signer
        self._clock = clock or (lambda: datetime.now(UTC))

    async def _post(self) -> httpx.Response:
        return await self._http.post(self._url, data={**self._form, **await self.assertion_form()})

    async def assertion_form(self) -> dict[str, str]:
        key = await self._signer.current()
        assertion = signing.client_assertion(key, self._client_id, self._url, self._clock())
        return {"client_assertion_type": signing.ASSERTION_TYPE, "client_assertion": assertion}


class StaticToken:
    """A fixed bearer token or API key header (no refresh possible: a 401 means login_required)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    async def header(self) -> dict[str, str]:
        return dict(self._headers)

    def forget(self) -> None:
        pass


class Auth(Protocol):
    """What `send` needs of an EMR's authentication: headers for a call, and to forget a refused token."""

    async def header(self) -> dict[str, str]: ...

    def forget(self) -> None: ...


async def send(
    http: httpx.AsyncClient,
    auth: Auth,
    method: str,
    url: str,
    *,
    write: bool = False,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response | outcomes.RetryLater | outcomes.Unknown:
    """One authenticated call; on a 401 the token is fetched again and the call made once more (a 401
    means the EMR did nothing, so even a write is safe to repeat). Returns the response, whatever its
    status, or the outcome of a transport failure."""
    for attempt in (1, 2):
        merged = {**(headers or {}), **await auth.header()}
        try:
            response = await http.request(method, url, headers=merged, **kwargs)
        except BudgetSpent as exc:
            if not write:
                raise
            return exc.refusal  # nothing was sent: the job waits for the budget, then writes
        except httpx.HTTPError as exc:
            return transport_outcome(exc, write=write)
        if response.status_code != 401 or attempt == 2 or isinstance(auth, StaticToken):  # nothing to renew
            return response
        auth.forget()
    raise AssertionError("unreachable")


async def read_json(
    http: httpx.AsyncClient,
    auth: Auth,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """A GET whose JSON object answer is wanted: AdapterError for any failure (a read is never
    Unknown), `{}` for a 404 when `allow_missing`."""
    answer = await send(http, auth, "GET", url, params=params)
    if not isinstance(answer, httpx.Response):
        raise outcomes.AdapterError(outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, answer.description))
    if allow_missing and answer.status_code == 404:
        return {}
    raise_for_read(answer, answer.text[:300] if answer.status_code >= 400 else "")
    return json_object(answer)


def next_link(page_url: str | httpx.URL, link: str, first_url: str | httpx.URL) -> str:
    """A page's `next` link resolved against that page's URL (RFC 3986 §5.2), since EMRs send relative
    ones (Canvas: `/Practitioner?_count=100&_offset=100`, https://docs.canvasmedical.com/api/pagination).
    A link off the EMR's own origin is refused (AdapterError): our bearer token would go with it."""
    resolved = httpx.URL(page_url).join(link)
    if _origin(resolved) != _origin(httpx.URL(first_url)):
        raise outcomes.AdapterError(
            outcomes.Rejected(
                outcomes.EMR_REJECTED,
                f"The EMR's next page is on another host ({resolved.host}); it was not followed.",
            )
        )
    return str(resolved)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


TakeCall = Callable[[], Awaitable[float | None]]
"""Take one call from a vendor's budget: None when granted, else the seconds until it refills."""


class BudgetSpent(outcomes.AdapterError):
    """The vendor's call budget for this connection's scope is spent; the call was not sent."""

    def __init__(self, refusal: outcomes.RetryLater) -> None:
        super().__init__(refusal)
        self.refusal = refusal


class MeteredClient(httpx.AsyncClient):
    """The shared EMR client seen through a vendor's call budget: every request, token fetches
    included, takes one call before it is sent, and a spent budget raises BudgetSpent (a read's
    AdapterError; `send` returns it to a write as RetryLater) without sending anything. Connections
    share the inner client's pool; bootstrap owns and closes it."""

    def __init__(self, inner: httpx.AsyncClient, take: TakeCall) -> None:
        super().__init__(
            base_url=inner.base_url,
            headers=inner.headers,
            timeout=inner.timeout,
            transport=_Unsent(),
            trust_env=False,  # its requests leave through the inner client, proxies and all
        )
        self._inner = inner
        self._take = take

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        wait = await self._take()
        if wait is not None:
            spent = f"The EMR's call budget is spent; it refills in {wait:.0f} s."
            raise BudgetSpent(outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, spent, wait, budget=True))
        return await self._inner.send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)


class _Unsent(httpx.AsyncBaseTransport):
    """MeteredClient's own transport, never used: its requests go through the inner client."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError("MeteredClient sends through its inner client")


class TooManyPages(Exception):
    """A paginated list ran past its page limit where every result mattered."""


async def read_pages(
    read: Callable[..., Awaitable[dict[str, Any]]],
    url: str,
    params: Mapping[str, Any],
    *,
    max_pages: int,
    must_finish: bool = False,
) -> list[dict[str, Any]]:
    """The `results` of a list paginated with `next` URLs (Django REST style: Elation, DrChrono),
    resolved and kept on the EMR's origin by `next_link`, at most `max_pages` pages; past that,
    TooManyPages if every result matters."""
    found: list[dict[str, Any]] = []
    page_url = url
    page = await read(url, params)
    for _ in range(max_pages):
        found += page.get("results") or []
        if not page.get("next"):
            return found
        page_url = next_link(page_url, str(page["next"]), url)
        page = await read(page_url)
    if must_finish:
        raise TooManyPages
    return found
