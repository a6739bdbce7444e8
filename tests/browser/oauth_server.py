"""An OAuth 2.0 authorization server on loopback for the browser: its authorize page shows the
practice an Approve and a Deny button (a person's consent), then redirects back with a code and the
state; its token endpoint is `tests.oauth_fake`'s (PKCE S256 verifier checked, a code works once,
same redirect_uri and client)."""

import secrets
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.oauth_fake import FakeAuthorizationServer

REQUIRED = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")


class ConsentServer:
    def __init__(self, checker: FakeAuthorizationServer, title: str = "DrChrono") -> None:
        self.checker = checker
        self.title = title
        self.pending: dict[str, dict[str, str]] = {}
        self.app = Starlette(
            routes=[
                Route(checker.authorize_path, self.authorize, methods=["GET"]),
                Route(checker.authorize_path, self.decide, methods=["POST"]),
                Route(checker.token_path, self.token, methods=["POST"]),
            ]
        )

    def served_app(self) -> Starlette:
        return self.app

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.checker.authorize_queries.append(query)
        missing = [name for name in REQUIRED if not query.get(name)]
        if missing:
            return HTMLResponse(f"invalid_request: missing {', '.join(missing)}", 400)
        if query["response_type"] != "code" or query["code_challenge_method"] != "S256":
            return HTMLResponse("invalid_request: authorization code with PKCE S256 only", 400)
        if query["client_id"] != self.checker.client_id:
            return HTMLResponse("unauthorized_client", 400)
        ticket = secrets.token_urlsafe(12)
        self.pending[ticket] = query
        return HTMLResponse(self._consent_page(ticket, query.get("scope", "")))

    def _consent_page(self, ticket: str, scope: str) -> str:
        scopes = "".join(f"<li>{escape(s)}</li>" for s in scope.split())
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{self.title} sign-in</title>"
            "</head><body style='font:17px system-ui;max-width:32rem;margin:3rem auto'>"
            f"<h1>{self.title}</h1><p>An app asks to reach your practice's {self.title} account:</p>"
            f"<ul>{scopes}</ul><form method='post'>"
            f"<input type='hidden' name='ticket' value='{ticket}'>"
            "<button name='decision' value='approve'>Approve</button> "
            "<button name='decision' value='deny'>Deny</button></form></body></html>"
        )

    async def decide(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        query = self.pending.pop(form.get("ticket", ""), None)
        if query is None:
            return HTMLResponse("unknown or used consent", 400)
        if form.get("decision") != "approve":
            back = {"error": "access_denied", "state": query["state"]}
        else:
            code = secrets.token_urlsafe(16)
            self.checker.codes[code] = query
            back = {"code": code, "state": query["state"]}
        return RedirectResponse(query["redirect_uri"] + "?" + urlencode(back), status_code=303)

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        header = request.headers.get("authorization", "")
        answer: httpx.Response = self.checker.token(form, header[6:] if header.startswith("Basic ") else None)
        body: Any = answer.content
        return Response(body, answer.status_code, media_type="application/json")
