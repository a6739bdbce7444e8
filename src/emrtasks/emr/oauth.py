"""OAuth 2.0 authorization code with PKCE (RFC 6749 section 4.1, RFC 7636 S256), as Link uses it to obtain
a practice's consent: endpoints from an EMR module's `OAUTH` declaration (or SMART discovery), the
authorization URL, and the code exchanged for tokens. No storage here: the caller keeps the verifier
and the state."""

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from emrtasks.emr import base

SMART_CONFIGURATION = "/.well-known/smart-configuration"
_PLACEHOLDER = re.compile(r"\{(\w+)(\|origin)?\}")


class OAuthError(Exception):
    """The authorization server could not be used or refused; the text is for a person (no secrets)."""


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters of the unreserved set (RFC 7636 section 4.1: 43 to 128)."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    return secrets.token_urlsafe(32)


def fill(template: str, config: Mapping[str, Any]) -> str:
    """`{name}` is the setting's value; `{name|origin}` the scheme and host of that URL."""

    def value(match: re.Match[str]) -> str:
        found = config.get(match.group(1))
        if not isinstance(found, str) or not found:
            raise OAuthError(
                f"The setting {match.group(1)} is needed to reach the EMR's authorization server."
            )
        if match.group(2):
            parts = urlsplit(found)
            if not parts.scheme or not parts.netloc:
                raise OAuthError(f"The setting {match.group(1)} must be a full URL.")
            return f"{parts.scheme}://{parts.netloc}"
        return found.rstrip("/")

    return _PLACEHOLDER.sub(value, template)


async def endpoints(
    declared: base.OAuthEndpoints, config: Mapping[str, Any], http: httpx.AsyncClient
) -> tuple[str, str]:
    """The authorization and token endpoints for this config. The deployment may override both
    (`oauth_authorize_url`, `oauth_token_url` in its app config: a regional host, a test server)."""
    if declared.smart_discovery and not config.get("oauth_authorize_url"):
        return await discover(fill("{base_url}", config), http)
    authorize = config.get("oauth_authorize_url") or fill(declared.authorize_url, config)
    token = config.get("oauth_token_url") or fill(declared.token_url, config)
    return str(authorize), str(token)


async def discover(fhir_base: str, http: httpx.AsyncClient) -> tuple[str, str]:
    """SMART App Launch discovery: `authorization_endpoint` and `token_endpoint` from the server's
    `.well-known/smart-configuration` (https://hl7.org/fhir/smart-app-launch/conformance.html)."""
    url = fhir_base.rstrip("/") + SMART_CONFIGURATION
    try:
        answer = await http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OAuthError(
            f"The FHIR server's SMART configuration could not be read ({type(exc).__name__})."
        ) from exc
    if answer.status_code != 200:
        raise OAuthError(f"The FHIR server's SMART configuration answered HTTP {answer.status_code}.")
    try:
        found = answer.json()
    except ValueError as exc:
        raise OAuthError("The FHIR server's SMART configuration is not JSON.") from exc
    if not isinstance(found, dict):
        raise OAuthError("The FHIR server's SMART configuration is not a JSON object.")
    authorize, token = found.get("authorization_endpoint"), found.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str) or not authorize or not token:
        raise OAuthError("The FHIR server's SMART configuration names no authorization or token endpoint.")
    return authorize, token


def authorization_url(
    authorize: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    verifier: str,
    audience: str | None = None,
) -> str:
    """Where the clinic's browser goes to consent. `audience`: SMART's `aud` (the FHIR base URL)."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
    }
    if scopes:
        query["scope"] = " ".join(scopes)
    if audience:
        query["aud"] = audience
    separator = "&" if urlsplit(authorize).query else "?"
    return authorize + separator + urlencode(query)


async def exchange_code(
    http: httpx.AsyncClient,
    token_url: str,
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str | None,
    verifier: str,
    secret_in_body: bool = True,
) -> dict[str, Any]:
    """The authorization code and the PKCE verifier for tokens (RFC 6749 section 4.1.3); a client
    secret in the form, or in HTTP Basic (RFC 6749 section 2.3.1) when not `secret_in_body`."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    basic: dict[str, Any] = {}
    if client_secret and secret_in_body:
        form["client_secret"] = client_secret
    elif client_secret:
        basic["auth"] = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
    try:
        answer = await http.post(token_url, data=form, headers={"accept": "application/json"}, **basic)
    except httpx.HTTPError as exc:
        raise OAuthError(f"The EMR's token endpoint could not be reached ({type(exc).__name__}).") from exc
    try:
        found = answer.json()
    except ValueError:
        found = None
    if answer.status_code != 200:
        error = found.get("error") if isinstance(found, dict) else None
        detail = f" ({error})" if isinstance(error, str) and len(error) < 80 else ""
        raise OAuthError(
            f"The EMR's token endpoint refused the authorization code: HTTP {answer.status_code}{detail}."
        )
    if not isinstance(found, dict) or not isinstance(found.get("access_token"), str):
        raise OAuthError("The EMR's token endpoint answered without an access token.")
    return found


def credentials_from(declared: base.OAuthEndpoints, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's settings filled from a token answer (e.g. DrChrono's access and refresh token)."""
    return {setting: answer[field] for field, setting in declared.token_fields.items() if answer.get(field)}
