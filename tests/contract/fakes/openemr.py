"""OpenEMR's OAuth2 token endpoint and the Standard/FHIR API routes the adapter uses, standing behind
OpenEMR's own published OpenAPI document (swagger/openemr-api.yaml, an excerpt kept in
tests/contract/specs/openemr/ with its SOURCE.md) and answering as OpenEMR's controllers really do
where the document is silent or wrong (https://github.com/openemr/openemr, files cited per quirk).

Faithful to OpenEMR, not to what one might wish:
- the message route json-decodes the body whatever its content type (a form body decodes to nothing
  and fails validation), requires the six fields with Particle's length rules, and does NOT check that
  the pid or the `to` username exist; the fake records whatever it is sent;
- `GET /api/user` never returns `username` nor `authorized` (UserService::search selects neither unless
  its sensitive fields are toggled, which UserRestController never does), and lists every row of
  `users`: inactive users and address-book entries too;
- `GET /api/user/:uuid` answers the whole `users` row (`SELECT *`), username and authorized included.
"""

import json
import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness, openapi_check

CLIENT_ID = "openemr-client"
CLIENT_SECRET = "openemr-secret"
USERNAME = "emrtasks-api"
PASSWORD = "api-password"
TOKEN_PATH = "/oauth2/default/token"
API = "/apis/default/api"
FHIR = "/apis/default/fhir"
SPEC = "openemr/openemr-api.excerpt.yaml"
SPEC_PREFIX = "/apis/default"  # the document's server url is /apis/default/
# Particle\Validator rules of MessageService::validate: field -> (min, max) length.
MESSAGE_RULES = {
    "body": (2, 65535),
    "to": (2, 255),
    "from": (2, 255),
    "groupname": (2, 255),
    "title": (2, 255),
    "message_status": (2, 20),
}


def _patient(
    pid: int, pubpid: str, fname: str, lname: str, dob: str, sex: str, ss: str = ""
) -> dict[str, Any]:
    return {
        "id": str(pid),
        "pid": str(pid),
        "uuid": str(uuid.UUID(int=0x9000 + pid)),
        "pubpid": pubpid,
        "fname": fname,
        "lname": lname,
        "DOB": dob,
        "sex": sex,
        "ss": ss,
        "phone_home": f"555-01{pid:02d}",
        "phone_cell": "",
    }


PATIENTS = (
    _patient(1, "MRN-1001", "Ava", "Thompson", "1984-03-12", "Female"),
    _patient(2, "MRN-2000", "Chris", "Morgan", "1990-04-04", "Male"),
    _patient(3, "MRN-2000", "Chris", "Morgan", "1961-08-30", "Female"),
    _patient(4, "MRN-1002", "Liam", "Garcia", "1979-07-25", "Male", ss="MRN-1001"),  # ss is searched too
)
SYSTEM_USERNAME = "oe-system"
"""The API's own system user (src/Services/UserService.php, SYSTEM_USER_USERNAME): a row with a username."""


def _user_row(
    uid: int, username: str, fname: str, lname: str, *, active: int = 1, authorized: int = 0, abook: str = ""
) -> dict[str, Any]:
    """A row of OpenEMR's `users` table (the columns the fake needs; the real table has more)."""
    return {
        "id": str(uid),
        "uuid": str(uuid.UUID(int=0x7000 + uid)),
        "username": username,
        "password": "NoLongerUsed",  # passwords live in users_secure since 5.0
        "authorized": str(authorized),
        "fname": fname,
        "mname": "",
        "lname": lname,
        "title": "",
        "federaltaxid": "",
        "federaldrugid": "",
        "upin": "",
        "facility": "Your Clinic Name Here",
        "facility_id": "3",
        "see_auth": "1",
        "active": str(active),
        "npi": "1234567893" if authorized else "",
        "specialty": "",
        "billname": None,
        "email": None,
        "url": None,
        "assistant": None,
        "organization": "Acme Labs" if abook else None,
        "valedictory": None,
        "street": None,
        "streetb": None,
        "city": None,
        "state": None,
        "zip": None,
        "phone": None,
        "fax": None,
        "phonew1": None,
        "phonecell": None,
        "notes": None,
        "state_license_number": None,
        "abook_type": abook,
        "calendar": str(authorized),
        "info": "",
        "last_updated": "2026-11-30 09:00:00",
    }


USERS = (
    _user_row(1, "admin", "Admin", "User", authorized=1),
    _user_row(2, USERNAME, "Emrtasks", "API"),
    _user_row(3, "dreyes", "Dana", "Reyes", authorized=1),
    _user_row(4, "jlee", "Jordan", "Lee"),
    _user_row(5, "oldnurse", "Former", "Nurse", active=0),
    _user_row(6, "", "Acme", "Labs", abook="ord_lab"),  # an address-book entry: no username
    _user_row(7, SYSTEM_USERNAME, "System", "Operation User"),
)
ABOOK_TITLES = {"ord_lab": "Lab Service"}
# src/Services/UserService.php, search(): the columns GET /api/user answers. No `username` (added only
# when toggleSensitiveFields(['username']) was called, which src/RestControllers/UserRestController.php
# never does) and no `authorized`; `abook_title` comes from a join on list abook_type.
USER_SEARCH_COLUMNS = [
    "id",
    "uuid",
    "title",
    "fname",
    "lname",
    "mname",
    "federaltaxid",
    "federaldrugid",
    "upin",
    "facility_id",
    "facility",
    "npi",
    "email",
    "active",
    "specialty",
    "billname",
    "url",
    "assistant",
    "organization",
    "valedictory",
    "street",
    "streetb",
    "city",
    "state",
    "zip",
    "phone",
    "fax",
    "phonew1",
    "phonecell",
    "notes",
    "state_license_number",
]
# src/RestControllers/UserRestController.php, SEARCH_FIELDS: the query keys getAll() keeps.
USER_SEARCH_FIELDS = [
    "id",
    "title",
    "fname",
    "lname",
    "mname",
    "federaltaxid",
    "federaldrugid",
    "upin",
    "facility_id",
    "facility",
    "npi",
    "email",
    "specialty",
    "billname",
    "url",
    "assistant",
    "organization",
    "valedictory",
    "street",
    "streetb",
    "city",
    "state",
    "zip",
    "phone",
    "fax",
    "phonew1",
    "phonecell",
    "notes",
    "state_license_number",
    "username",
]
NOTE_TYPES = (
    ("Unassigned", "Unassigned", 1),
    ("Lab Results", "Lab Results", 1),
    ("Pharmacy", "Pharmacy", 1),
    ("Other", "Other", 1),
    ("Retired Type", "Retired Type", 0),
)


def standard(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"validationErrors": [], "internalErrors": [], "data": data}, status_code=status)


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description, "message": description}, status)


class FakeOpenEmr(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.spec = openapi_check.Spec(openapi_check.load(SPEC), prefix=SPEC_PREFIX)
        self.message_answer = "controller"
        """How a stored message is answered: "controller" as MessageRestController does (201 `{"mid": n}`),
        "swagger" as the published document says (200, the standard envelope)."""
        self.note_types = list(NOTE_TYPES)
        self.gone_meanwhile: set[str] = set()
        """User uuids still listed by GET /api/user whose own record is gone (deleted in between)."""
        self.refresh_tokens: set[str] = set()
        self.patients = [dict(p) for p in PATIENTS]
        self.users = [dict(u) for u in USERS]
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self.token, methods=["POST"]),
                Route(f"{FHIR}/Patient", self.fhir_patients, methods=["GET"]),
                Route(f"{API}/patient", self.list_patients, methods=["GET"]),
                Route(API + "/patient/{puuid}", self.get_patient, methods=["GET"]),
                Route(API + "/patient/{pid}/message", self.post_message, methods=["POST"]),
                Route(f"{API}/user", self.list_users, methods=["GET"]),
                Route(API + "/user/{uuid}", self.get_user, methods=["GET"]),
                Route(API + "/list/{list_name}", self.get_list, methods=["GET"]),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == TOKEN_PATH

    def spec_skips(self, path: str) -> bool:
        return path == TOKEN_PATH  # the OAuth2 server is not in the API document

    # --- OAuth2 (league/oauth2-server behind OpenEMR) ---
    async def token(self, request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oauth_error(
                400, "unsupported_grant_type", "The authorization grant type is not supported."
            )
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant = form.get("grant_type")
        if grant not in ("password", "refresh_token"):
            return oauth_error(
                400, "unsupported_grant_type", "The authorization grant type is not supported."
            )
        if (
            self.refuse_credentials
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
        ):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        if grant == "refresh_token":
            return self._refresh(form)
        return self._password(form)

    def _password(self, form: dict[str, str]) -> JSONResponse:
        if form.get("user_role") != "users" or not form.get("username") or not form.get("password"):
            return oauth_error(400, "invalid_request", "The request is missing a required parameter.")
        if (form["username"], form["password"]) != (USERNAME, PASSWORD):
            return oauth_error(400, "invalid_grant", "The user credentials were incorrect.")
        return self._tokens("offline_access" in form.get("scope", "").split())

    def _refresh(self, form: dict[str, str]) -> JSONResponse:
        if form.get("refresh_token") not in self.refresh_tokens:
            return oauth_error(400, "invalid_grant", "The refresh token is invalid.")
        self.refresh_tokens.discard(form["refresh_token"])  # rotated: usable once
        return self._tokens(True)

    def _tokens(self, offline: bool) -> JSONResponse:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": 3600,
            "access_token": self.issue_token(),
        }
        if offline:
            body["refresh_token"] = f"refresh-{self.issued}"
            self.refresh_tokens.add(body["refresh_token"])
        return JSONResponse(body)

    def _denied(self, request: Request) -> JSONResponse | None:
        if self.bearer_ok(request.headers.get("authorization")):
            return None
        return oauth_error(
            401, "access_denied", "The resource owner or authorization server denied the request."
        )

    # --- FHIR and Standard API ---
    async def fhir_patients(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        wanted = request.query_params.get("identifier")
        found = [p for p in self.patients if wanted is None or wanted in (p["pubpid"], p["ss"])]
        entries = [
            {"fullUrl": f"http://emr.test{FHIR}/Patient/{p['uuid']}", "resource": _fhir(p)} for p in found
        ]
        return JSONResponse(
            {"resourceType": "Bundle", "type": "collection", "total": len(found), "entry": entries}
        )

    async def list_patients(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        return standard(self.patients)  # search keys outside OpenEMR's whitelist (pubpid) are ignored

    async def get_patient(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        puuid = request.path_params["puuid"]
        found = next((p for p in self.patients if p["uuid"] == puuid), None)
        if found is None:
            return JSONResponse(
                {
                    "validationErrors": {"uuid": {"invalid or nonexisting value": f" value {puuid}"}},
                    "data": [],
                },
                400,
            )
        return standard(found)

    async def list_users(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        # UserRestController::getAll keeps only its SEARCH_FIELDS; the service filters every row of
        # `users` on them (no `active` filter: inactive users and address-book entries are listed too).
        wanted = {k: v for k, v in request.query_params.items() if k in USER_SEARCH_FIELDS}
        rows = [u for u in self.users if all(str(u.get(k) or "") == v for k, v in wanted.items())]
        return standard([_as_listed(u) for u in rows])

    async def get_user(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        # UserRestController::getOne -> UserService::getUserByUUID: `SELECT * FROM users WHERE uuid = ?`,
        # so the single-user answer has every column, username and authorized included; none is a 404
        # with the empty envelope (RestControllerHelper::handleProcessingResult, not a multiple result).
        wanted = request.path_params["uuid"]
        found = next(
            (u for u in self.users if u["uuid"] == wanted and wanted not in self.gone_meanwhile), None
        )
        if found is None:
            return standard([], status=404)
        return standard(dict(found))

    async def get_list(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        # ListRestController::getOptions -> RestControllerHelper::responseHandler: the bare rows with
        # 200, or, when the list has no rows (or does not exist), 404 with a `null` body.
        if request.path_params["list_name"] != "note_type" or not self.note_types:
            return JSONResponse(None, status_code=404)
        options = [
            {"list_id": "note_type", "option_id": o, "title": t, "seq": i, "activity": a}
            for i, (o, t, a) in enumerate(self.note_types)
        ]
        return JSONResponse(options)

    async def post_message(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            data = json.loads(await request.body())
        except ValueError:
            data = None  # PHP's json_decode of a form body: null, cast to an empty array
        problems = validate_message(data if isinstance(data, dict) else {})
        if problems:
            return JSONResponse(problems, status_code=400)
        mid = len(self.created) + 1
        self.created.append(
            {
                "id": mid,
                "pid": int(request.path_params["pid"]),
                "body": f"\n2026-11-30 12:00 ({data['from']} to {data['to']}) {data['body']}",
                "groupname": data["groupname"],
                "user": data["from"],
                "assigned_to": data["to"],
                "message_status": data["message_status"],
                "title": data["title"],
                "activity": 1,
                "authorized": 1,
                "deleted": 0,
            }
        )
        if self.message_answer == "swagger":  # what the published document shows: 200, the envelope
            return standard({"mid": mid})
        # MessageRestController::post -> RestControllerHelper::responseHandler($id, ["mid" => $id], 201)
        return JSONResponse({"mid": mid}, status_code=201)


def _as_listed(row: dict[str, Any]) -> dict[str, Any]:
    """A `users` row as GET /api/user answers it (UserService::search's columns)."""
    listed = {k: row.get(k) for k in USER_SEARCH_COLUMNS}
    return {**listed, "abook_title": ABOOK_TITLES.get(row["abook_type"]), "last_updated": row["last_updated"]}


def validate_message(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """MessageService::validate, with Particle\\Validator's message keys and texts."""
    problems = {}
    for field, (low, high) in MESSAGE_RULES.items():
        value = data.get(field)
        if value is None:
            problems[field] = {"Required::NON_EXISTENT_KEY": f"{field} must be provided, but does not exist"}
        elif len(str(value)) < low:
            problems[field] = {"LengthBetween::TOO_SHORT": f"{field} must be {low} characters or longer"}
        elif len(str(value)) > high:
            problems[field] = {"LengthBetween::TOO_LONG": f"{field} must be {high} characters or shorter"}
    return problems


def _fhir(patient: dict[str, Any]) -> dict[str, Any]:
    identifiers = [
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PT"}]},
            "value": patient["pubpid"],
        }
    ]
    if patient["ss"]:
        identifiers.append({"system": "http://hl7.org/fhir/sid/us-ssn", "value": patient["ss"]})
    return {
        "resourceType": "Patient",
        "id": patient["uuid"],
        "identifier": identifiers,
        "name": [{"use": "official", "family": patient["lname"], "given": [patient["fname"]]}],
        "birthDate": patient["DOB"],
        "gender": patient["sex"].lower(),
    }
