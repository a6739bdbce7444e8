"""A SMART Backend Services token endpoint (the EHR's authorization server), beside the FHIR fake.

It verifies each client assertion as the SMART spec asks a server to
(tests/contract/specs/smart/, "Signature Verification"): the key named by
`kid` is fetched over real HTTP from the JWKS URL registered for the client (our service's
`GET /.well-known/jwks.json`), with PyJWT, a different JOSE library from the one that signs (joserfc);
alg RS384 or ES384, typ JWT, iss = sub = the client id, aud = this endpoint, exp at most five minutes
ahead, a jti never seen before. Then it issues a bearer token the FHIR fake accepts.
"""

import asyncio
import time
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract.fakes.fhir import FakeFhir

TOKEN_PATH = "/smart/token"
CLIENT_ID = "emrtasks-backend"
SCOPE = "system/Patient.read system/Practitioner.read system/Task.read system/Task.write"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "jti"]


class SmartTokenEndpoint:
    """Verifies assertions against a JWKS URL (client-confidential-asymmetric.excerpt.md, "Signature
    Verification"); the fake records why each refused request was refused in `refusals`."""

    def __init__(self, jwks_url: str, client_id: str = CLIENT_ID) -> None:
        self.jwks_url = jwks_url
        self.client_id = client_id
        self.seen_jtis: set[str] = set()
        self.refusals: list[str] = []
        self.kids: list[str] = []

    def check(self, assertion: str, token_url: str) -> str | None:
        """Why the assertion is refused, or None. Blocking (fetches the JWKS): run it in a thread."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return "the client assertion is not a JWT"
        if header.get("alg") not in ALGORITHMS or header.get("typ") != "JWT" or not header.get("kid"):
            return f"alg must be RS384 or ES384, typ JWT, and kid set (got {header})"
        jwks = jwt.PyJWKClient(self.jwks_url, cache_jwk_set=False, cache_keys=False)
        try:
            key = jwks.get_signing_key(str(header["kid"]))
        except jwt.PyJWKClientError as exc:
            return f"kid {header['kid']} is not in the JWKS: {exc}"
        if key.algorithm_name != header["alg"]:
            return f"the key {header['kid']} is {key.algorithm_name}, not {header['alg']}"
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[header["alg"]],
                audience=token_url,
                issuer=self.client_id,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            return f"the client assertion is refused: {type(exc).__name__}: {exc}"
        return self._check_claims(claims, str(header["kid"]))

    def _check_claims(self, claims: dict[str, Any], kid: str) -> str | None:
        if claims["sub"] != self.client_id:
            return "sub must be the client id"
        if claims["exp"] > time.time() + 300:
            return "exp is more than five minutes ahead"
        if claims["jti"] in self.seen_jtis:
            return "jti was used before (replay)"
        self.seen_jtis.add(claims["jti"])
        self.kids.append(kid)
        return None

    @staticmethod
    def form_problem(form: Any) -> str | None:
        """The token request's own parameters (backend-services.excerpt.md), each named when wrong."""
        if form.get("grant_type") != "client_credentials":
            return "grant_type must be client_credentials"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return f"client_assertion_type must be {ASSERTION_TYPE}"
        if not form.get("scope"):
            return "scope is required"
        if not form.get("client_assertion"):
            return "client_assertion is required"
        if "client_secret" in form:
            return "client_secret: a client assertion replaces the client secret"
        return None


class SmartFhir(FakeFhir):
    """The FHIR fake whose tokens come from a SMART Backend Services token endpoint."""

    def __init__(self, jwks_url: str, client_id: str = CLIENT_ID) -> None:
        super().__init__()
        self.endpoint = SmartTokenEndpoint(jwks_url, client_id)
        self.app = Starlette(routes=[Route(TOKEN_PATH, self.smart_token, methods=["POST"]), *self.app.routes])

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == TOKEN_PATH

    async def smart_token(self, request: Request) -> JSONResponse:
        form = await request.form()
        problem = self.endpoint.form_problem(form)
        if problem:  # RFC 6749 §5.2
            self.endpoint.refusals.append(problem)
            return JSONResponse({"error": "invalid_request", "error_description": problem}, status_code=400)
        assertion = str(form["client_assertion"])
        problem = await asyncio.to_thread(self.endpoint.check, assertion, str(request.url))
        if problem:  # the SMART spec: invalid_client
            self.endpoint.refusals.append(problem)
            return JSONResponse({"error": "invalid_client", "error_description": problem}, status_code=401)
        body = {"access_token": self.issue_token(), "token_type": "bearer", "expires_in": 300}
        return JSONResponse({**body, "scope": form["scope"]})


def config(base_url: str, client_id: str = CLIENT_ID) -> dict[str, Any]:
    """A `fhir` connection's settings for SMART Backend Services against SmartFhir at base_url."""
    return {
        "base_url": base_url,
        "mrn_system": "urn:mrn:test",
        "auth": "smart_backend",
        "token_url": f"{base_url}{TOKEN_PATH}",
        "client_id": client_id,
        "scope": SCOPE,
        "task_types": [{"code": "refill", "display": "Prescription refill"}],
    }
