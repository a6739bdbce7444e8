"""eClinicalWorks' FHIR R4 API as far as the adapter uses it: a SMART Backend Services token endpoint that
verifies the client assertion (RS384 or ES384, by kid) against the app's registered JWKS with PyJWT (not
the library that signs), Patient, Practitioner and
Encounter search, and the Encounter create that writes telephone encounters only, enforcing R4 and US Core
(status, class, type and subject required; references that resolve) and bearer tokens it issued.

The Encounter is checked against US Core 6.1.0's Encounter profile (verbatim in
tests/contract/specs/eclinicalworks/, see its SOURCE.md) on the R4 Encounter (the `fhir.resources` R4B model:
element names, types, cardinalities), and the Encounter search against US Core's search parameters. A
refusal is an OperationOutcome whose issue names the element in `expression`.
"""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from fhir.resources.R4B.encounter import Encounter as R4Encounter
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract import harness
from tests.contract.keys import FixedSigner

CLIENT_ID = "emrtasks-ecw"
TOKEN_PATH = "/oauth/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MRN_SYSTEM = "urn:oid:1.2.840.114350.ecw.mrn"
PROVIDER_ID = "dr-1"
LOCATION_ID = "loc-1"
TELEPHONE_CODE = "185317003"
# R4's required binding of Encounter.status (http://hl7.org/fhir/R4/valueset-encounter-status.html)
STATUSES = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)
SPECS = Path(__file__).parents[1] / "specs" / "eclinicalworks"
US_CORE_ENCOUNTER = json.loads((SPECS / "StructureDefinition-us-core-encounter.json").read_text())
# US Core 6.1.0's Encounter search parameters (the server CapabilityStatement's list); `identifier`'s
# definition is kept beside the profile.
SEARCH_PARAMETERS = {"_id", "class", "date", "discharge-disposition", "identifier", "location", "patient"}
SEARCH_PARAMETERS |= {"status", "type", "_count"}
SIGNER = FixedSigner("RS384")
"""The deployment's key in the contract tests; its public JWK is in the app's JWKS registered at eCW."""
PATIENTS = [
    {"id": "p-1001", "mrn": "MRN-1001", "family": "Thompson", "given": "Ava", "birthDate": "1984-03-12"},
    {"id": "p-2000a", "mrn": "MRN-2000", "family": "Morgan", "given": "Chris", "birthDate": "1990-04-04"},
    {"id": "p-2000b", "mrn": "MRN-2000", "family": "Morgan", "given": "Chris", "birthDate": "1961-08-30"},
]
PRACTITIONERS = {PROVIDER_ID: "Dana Reyes, MD", "staff-7": "Jordan Lee, RN", "staff-8": "Taylor Brooks"}


def outcome(
    status: int, text: str, code: str = "invalid", expression: list[str] | None = None
) -> JSONResponse:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = expression
    body = {"resourceType": "OperationOutcome", "issue": [issue]}
    return JSONResponse(body, status_code=status, media_type="application/fhir+json")


def bundle(resources: list[dict[str, Any]]) -> JSONResponse:
    body = {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
    body["entry"] = [{"resource": r} for r in resources]
    return JSONResponse(body, media_type="application/fhir+json")


class FakeEcw(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.jwks: dict[str, dict[str, Any]] = {SIGNER.kid: SIGNER.jwk}
        """The app's registered JWK Set, by kid."""
        self.used_jtis: set[str] = set()
        self.patients = {
            p["id"]: {
                "resourceType": "Patient",
                "id": p["id"],
                "identifier": [
                    {"system": MRN_SYSTEM, "value": p["mrn"]},
                    {"system": "urn:oid:ecw.account", "value": f"ACC-{p['id']}"},
                ],
                "name": [{"family": p["family"], "given": [p["given"]]}],
                "birthDate": p["birthDate"],
                "gender": "unknown",
            }
            for p in PATIENTS
        }
        # Same MRN in another system: only the connection's MRN system may match.
        self.patients["p-other"] = {
            "resourceType": "Patient",
            "id": "p-other",
            "identifier": [{"system": "urn:other", "value": "MRN-1001"}],
            "name": [{"family": "Elsewhere"}],
        }
        self.practitioners = {
            pid: {"resourceType": "Practitioner", "id": pid, "name": [{"text": name}]}
            for pid, name in PRACTITIONERS.items()
        }
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self.token, methods=["POST"]),
                Route("/Patient", self.search_patients, methods=["GET"]),
                Route("/Practitioner", self.search_practitioners, methods=["GET"]),
                Route("/Encounter", self.search_encounters, methods=["GET"]),
                Route("/Encounter", self.create_encounter, methods=["POST"]),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == TOKEN_PATH

    # --- SMART Backend Services ---
    async def token(self, request: Request) -> Response:
        form = await request.form()
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != ASSERTION_TYPE
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if not str(form.get("scope", "")).startswith("system/"):
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        problem = self.check_assertion(str(form.get("client_assertion", "")), str(request.url))
        if self.refuse_credentials or problem:
            return JSONResponse({"error": "invalid_client", "error_description": problem or "refused"}, 401)
        body = {"access_token": self.issue_token(), "token_type": "bearer", "expires_in": 300}
        return JSONResponse({**body, "scope": form["scope"]})

    def register_jwks(self, jwks_url: str) -> None:
        """Register the app's JWKS from its URL (eCW's portal takes a JWKS URL for backend apps)."""
        keys = httpx.get(jwks_url, timeout=10).json()["keys"]
        self.jwks = {k["kid"]: k for k in keys}

    def check_assertion(self, assertion: str, token_url: str) -> str | None:
        """SMART Backend Services: the JWT must be RS384 or ES384 with typ JWT, signed by the key its kid
        names in the registered JWKS, name the client (iss, sub) and this endpoint (aud), and be fresh
        (exp at most five minutes ahead, jti never seen)."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return "the client assertion is not a JWT"
        jwk = self.jwks.get(str(header.get("kid")))
        if header.get("alg") not in ("RS384", "ES384") or jwk is None or header.get("typ") != "JWT":
            return "alg must be RS384 or ES384, typ JWT, and kid a key of the registered JWKS"
        try:
            claims = jwt.decode(
                assertion,
                jwt.PyJWK(jwk).key,
                algorithms=[jwk["alg"]],
                audience=token_url,
                issuer=CLIENT_ID,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            return "iss and sub must be the client id, aud the token endpoint"
        except jwt.InvalidTokenError as exc:
            return f"the client assertion is refused: {exc}"
        if claims["sub"] != CLIENT_ID:
            return "iss and sub must be the client id, aud the token endpoint"
        if claims["exp"] > time.time() + 300 or claims["jti"] in self.used_jtis:
            return "the assertion is expired, too long-lived or replayed"
        self.used_jtis.add(claims["jti"])
        return None

    def _refused(self, request: Request) -> Response | None:
        if not self.bearer_ok(request.headers.get("authorization")):
            return outcome(401, "Invalid or expired access token", code="login")
        return None

    # --- reads ---
    async def search_patients(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if "identifier" not in request.query_params:
            return outcome(400, "Patient search needs identifier, name or birthdate")
        system, _, value = request.query_params["identifier"].partition("|")
        found = [p for p in self.patients.values() if _has_identifier(p, system, value)]
        return bundle(found)

    async def search_practitioners(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        return bundle(list(self.practitioners.values()))

    async def search_encounters(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        unknown = sorted(set(request.query_params) - SEARCH_PARAMETERS)
        if unknown and "handling=strict" in request.headers.get("prefer", ""):
            return outcome(400, f"Unknown search parameter: {', '.join(unknown)}", expression=unknown)
        system, _, value = request.query_params.get("identifier", "|").partition("|")
        return bundle([e for e in self.created if _has_identifier(e, system, value)])

    # --- the telephone encounter ---
    async def create_encounter(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.headers.get("content-type", "").split(";")[0] not in (
            "application/fhir+json",
            "application/json",
        ):
            return outcome(415, "Encounter must be sent as application/fhir+json")
        encounter = await request.json()
        problem = self.check_encounter(encounter)
        if problem:
            status, text, where = problem
            return outcome(status, text, expression=where)
        encounter = {**encounter, "id": str(uuid.uuid4()), "meta": {"versionId": "1"}}
        self.created.append(encounter)
        location = {"location": f"Encounter/{encounter['id']}/_history/1"}
        return JSONResponse(encounter, status_code=201, media_type="application/fhir+json", headers=location)

    def check_encounter(self, encounter: dict[str, Any]) -> tuple[int, str, list[str]] | None:
        """US Core 6.1.0 Encounter on R4, then eCW's rule (telephone encounters only) and its records."""
        if encounter.get("resourceType") != "Encounter":
            return 400, "resourceType must be Encounter", ["Encounter"]
        problems = encounter_problems(encounter)
        if problems:
            where, why = next(iter(problems.items()))
            return 400, f"{where}: {why}", list(problems)
        codes = [c.get("code") for t in encounter["type"] for c in t.get("coding") or []]
        if TELEPHONE_CODE not in codes:
            return 422, "Only Telephone Encounters can be created", ["Encounter.type"]
        patient = encounter["subject"].get("reference", "")
        if patient.removeprefix("Patient/") not in self.patients:
            return 404, f"Resource {patient} not found", ["Encounter.subject"]
        for participant in encounter.get("participant") or []:
            reference = (participant.get("individual") or {}).get("reference", "")
            if reference.removeprefix("Practitioner/") not in self.practitioners:
                return 422, f"Resource {reference} not found", ["Encounter.participant.individual"]
        for place in encounter.get("location") or []:
            if place["location"].get("reference") != f"Location/{LOCATION_ID}":
                return 422, f"Resource {place['location'].get('reference')} not found", ["Encounter.location"]
        return None


def encounter_problems(encounter: dict[str, Any]) -> dict[str, str]:
    """What R4 and US Core 6.1.0's Encounter profile refuse in this Encounter, by element path."""
    problems: dict[str, str] = {}
    try:
        R4Encounter.model_validate(encounter)
    except ValidationError as exc:
        for error in exc.errors():
            path = ".".join(str(p) for p in error["loc"] if isinstance(p, str) and p != "root")
            problems.setdefault(f"Encounter.{path}".rstrip("."), error["msg"])
    if encounter.get("status") not in STATUSES:
        problems.setdefault("Encounter.status", "not a code of http://hl7.org/fhir/ValueSet/encounter-status")
    for element in US_CORE_ENCOUNTER["differential"]["element"]:
        path = element["path"]
        values = _values(encounter, path.split(".")[1:]) if "." in path else [encounter]
        parents = _values(encounter, path.split(".")[1:-1]) if path.count(".") > 1 else [encounter]
        if element.get("min", 0) > 0 and len(values) < element["min"] * len(parents):
            problems.setdefault(path, f"minimum required = {element['min']} (US Core Encounter)")
        targets = [t for ty in element.get("type", []) for t in ty.get("targetProfile", [])]
        if targets and any(not _targets(v, targets) for v in values):
            problems.setdefault(path, "must reference " + " or ".join(t.rsplit("/", 1)[1] for t in targets))
    return problems


def _values(node: Any, steps: list[str]) -> list[Any]:
    """Every value at this path below node, arrays flattened."""
    found = node if isinstance(node, list) else [node]
    for step in steps:
        found = [
            v
            for n in found
            if isinstance(n, dict) and n.get(step) not in (None, [], "")
            for v in _many(n[step])
        ]
    return found


def _many(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _targets(reference: Any, profiles: list[str]) -> bool:
    """A reference to one of the profiles' resource types (us-core-practitioner -> Practitioner, ...)."""
    kinds = {
        "us-core-patient": "Patient",
        "us-core-practitioner": "Practitioner",
        "us-core-practitionerrole": "PractitionerRole",
        "us-core-relatedperson": "RelatedPerson",
        "us-core-organization": "Organization",
        "us-core-procedure": "Procedure",
        "Observation": "Observation",
        "ImmunizationRecommendation": "ImmunizationRecommendation",
    }
    allowed = {kinds.get(p.rsplit("/", 1)[1], "Condition") for p in profiles}
    kind = str((reference or {}).get("reference", "")).split("/", 1)[0] if isinstance(reference, dict) else ""
    return kind in allowed


def _has_identifier(resource: dict[str, Any], system: str, value: str) -> bool:
    return any(
        i.get("system") == system and i.get("value") == value for i in resource.get("identifier") or []
    )
