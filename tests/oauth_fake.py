"""A small OAuth 2.0 authorization server for tests (an httpx MockTransport handler): authorization code
with PKCE S256 as RFC 6749 section 4.1 and RFC 7636 define it. The authorize endpoint consents at once
and redirects with a code; the token endpoint refuses a code whose verifier does not match the
challenge, a code used twice, a wrong redirect_uri or client. Other requests go to `fallback`."""

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import httpx


class FakeAuthorizationServer:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None,
        authorize_path: str = "/o/authorize/",
        token_path: str = "/o/token/",
        tokens: Callable[[], dict[str, Any]] | None = None,
        fallback: Callable[[httpx.Request], Awaitable[httpx.Response]] | None = None,
        smart_configuration: dict[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.authorize_path = authorize_path
        self.token_path = token_path
        self.tokens = tokens or (
            lambda: {"access_token": "granted-" + secrets.token_hex(4), "token_type": "Bearer"}
        )
        self.fallback = fallback
        self.smart_configuration = smart_configuration
        self.codes: dict[str, dict[str, str]] = {}
        self.authorize_queries: list[dict[str, str]] = []
        self.token_forms: list[dict[str, str]] = []
        self.secret_methods: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == self.authorize_path and request.method == "GET":
            return self.authorize(request)
        if path.endswith("/.well-known/smart-configuration") and self.smart_configuration is not None:
            return httpx.Response(200, json=self.smart_configuration)
        if path == self.token_path and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs((await request.aread()).decode()).items()}
            if form.get("grant_type") == "authorization_code" or self.fallback is None:
                header = request.headers.get("authorization", "")
                return self.token(form, header[6:] if header.startswith("Basic ") else None)
        if self.fallback is None:
            return httpx.Response(404, json={"error": "not_found"})
        return await self.fallback(request)

    def authorize(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        self.authorize_queries.append(query)
        for name in ("response_type", "client_id", "redirect_uri", "state", "code_challenge"):
            if not query.get(name):
                return httpx.Response(400, json={"error": "invalid_request", "missing": name})
        if query["response_type"] != "code" or query.get("code_challenge_method") != "S256":
            return httpx.Response(400, json={"error": "invalid_request"})
        if query["client_id"] != self.client_id:
            return httpx.Response(400, json={"error": "unauthorized_client"})
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return httpx.Response(302, headers={"location": target})

    def token(self, form: dict[str, str], basic: str | None = None) -> httpx.Response:
        self.token_forms.append(form)
        if form.get("grant_type") != "authorization_code":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        secret = form.get("client_secret")
        if basic is not None:  # client_secret_basic: form-urlencoded id and secret (RFC 6749 2.3.1)
            basic_id, _, secret = base64.b64decode(basic).decode().partition(":")
            if "client_secret" in form or unquote_plus(basic_id) != form.get("client_id"):
                return httpx.Response(400, json={"error": "invalid_request"})  # one method only
            secret = unquote_plus(secret)
        self.secret_methods.append("basic" if basic is not None else "body" if secret else "none")
        if form.get("client_id") != self.client_id or (
            self.client_secret is not None and secret != self.client_secret
        ):
            return httpx.Response(401, json={"error": "invalid_client"})
        asked = self.codes.pop(form.get("code", ""), None)  # a code works once
        if asked is None or form.get("redirect_uri") != asked["redirect_uri"]:
            return httpx.Response(400, json={"error": "invalid_grant"})
        if challenge(form.get("code_verifier", "")) != asked["code_challenge"]:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "PKCE verifier"})
        return httpx.Response(200, json=self.tokens())


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def consent(server: FakeAuthorizationServer, authorization_url: str) -> dict[str, str]:
    """What the browser would bring back to the redirect URI: `code` and `state` (or `error`)."""
    request = httpx.Request("GET", authorization_url)
    answer = server.authorize(request)
    assert answer.status_code == 302, answer.content
    location = answer.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
