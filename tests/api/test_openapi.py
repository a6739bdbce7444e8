"""The documented surface: /openapi.json covers every /v1 route with its error responses (ErrorBody), and
routing failures (unknown route 404, wrong method 405) answer with the contract's error body."""

import re

import openapi_spec_validator
import pytest
from fastapi.routing import APIRoute

from emrtasks.api.app import create_app

ERROR_BODY = "#/components/schemas/ErrorBody"
AUTH = {"401", "403"}
EXPECTED_ERRORS = {
    ("post", "/v1/tasks"): {"400", "413"} | AUTH,
    ("get", "/v1/tasks/requirements"): AUTH,
    ("get", "/v1/tasks/{task_id}"): {"404"} | AUTH,
    ("get", "/v1/jobs/{job_id}"): {"404"} | AUTH,
    ("get", "/v1/users"): AUTH,
    ("get", "/v1/phone-call-types"): AUTH,
    ("get", "/v1/patients"): {"400"} | AUTH,
    ("get", "/v1/settings"): AUTH,
    ("post", "/v1/settings"): {"400", "413"} | AUTH,
    ("get", "/v1/webhook-events"): {"400"} | AUTH,
    ("get", "/v1/sandbox/emr-tasks"): {"400"} | AUTH,
    ("post", "/v1/link/token/create"): {"400", "401", "413"},
    ("get", "/v1/link/token/exchange"): {"400", "401"},
}


@pytest.fixture
async def spec(api):
    answer = await api.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def _v1_operations(spec):
    return {
        (method, path): operation
        for path, operations in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    }


def _schema_ref(response):
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


def _body_schema(spec, operation):
    """The request body's schema, found where its `$ref` points."""
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _api_routes(routes):
    """Every APIRoute of the app, looking inside included routers (FastAPI may or may not flatten them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


async def test_the_document_is_valid_openapi_3_1_with_every_reference_resolved(spec):
    openapi_spec_validator.validate(spec)


async def test_openapi_documents_every_contract_operation(spec):
    missing = set(EXPECTED_ERRORS) - set(_v1_operations(spec))
    assert missing == set()


async def test_every_v1_route_of_the_app_is_documented(spec, runtime):
    app = create_app(runtime.ctx)
    routes = {
        (method.lower(), route.path)
        for route in _api_routes(app.routes)
        if route.path.startswith("/v1/")
        for method in route.methods
    }
    assert set(EXPECTED_ERRORS) <= routes
    assert routes == set(_v1_operations(spec))


async def test_every_v1_operation_documents_401_with_the_error_body(spec):
    for (method, path), operation in _v1_operations(spec).items():
        assert _schema_ref(operation["responses"].get("401", {})) == ERROR_BODY, f"{method} {path}"


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED_ERRORS), ids=lambda v: v)
async def test_each_v1_operation_documents_its_errors_with_the_error_body(spec, method, path):
    responses = spec["paths"][path][method]["responses"]
    for status in EXPECTED_ERRORS[(method, path)]:
        assert status in responses, f"{method} {path} does not document {status}"
        assert _schema_ref(responses[status]) == ERROR_BODY, f"{method} {path} {status}"


async def test_every_v1_body_documents_415_and_every_authenticated_operation_429(spec):
    for (method, path), operation in _v1_operations(spec).items():
        responses = operation["responses"]
        if "requestBody" in operation:
            assert _schema_ref(responses.get("415", {})) == ERROR_BODY, f"{method} {path}"
        assert _schema_ref(responses.get("429", {})) == ERROR_BODY, f"{method} {path}"
    register = spec["paths"]["/v1/webhook"]["post"]["responses"]
    assert _schema_ref(register.get("409", {})) == ERROR_BODY


async def test_every_documented_v1_error_response_uses_the_error_body(spec):
    wrong = sorted(
        f"{method.upper()} {path} {status}"
        for (method, path), operation in _v1_operations(spec).items()
        for status, response in operation["responses"].items()
        if status[0] in "45" and _schema_ref(response) != ERROR_BODY
    )
    assert wrong == []


async def test_the_error_body_schema_matches_the_contract(spec):
    schema = spec["components"]["schemas"]["ErrorBody"]
    assert set(schema["properties"]) == {"success", "error", "message", "errors"}
    assert set(schema["required"]) >= {"error", "message"}
    field_error = spec["components"]["schemas"]["FieldErrorBody"]
    assert set(field_error["properties"]) == {"field", "code", "message"}


CLIENT_ONLY = {"client_id": [], "client_secret": []}
CONNECTION = {**CLIENT_ONLY, "access_token": []}


async def test_every_2xx_answer_is_documented_as_exactly_its_model(spec):
    wrong = []
    for (method, path), operation in _v1_operations(spec).items():
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("2") and (set(schema or {}) != {"$ref"}):
                wrong.append(f"{method.upper()} {path} {status}: {schema}")
    assert wrong == []
    for path, model in (
        ("/healthz", "Health"),
        ("/readyz", "Health"),
        ("/.well-known/jwks.json", "JsonWebKeySet"),
    ):
        assert _schema_ref(spec["paths"][path]["get"]["responses"]["200"]) == f"#/components/schemas/{model}"


async def test_every_authenticated_operation_requires_its_headers_together_in_one_requirement(spec):
    for (method, path), operation in _v1_operations(spec).items():
        security = operation["security"]
        if path.startswith(("/v1/webhook/", "/v1/link/")) or (method, path) in {
            ("get", "/v1/webhook"),
            ("post", "/v1/webhook"),
            ("post", "/v1/webhook-events/{event_id}/retry"),
        }:
            assert security == [CLIENT_ONLY], f"{method} {path}"
        elif (method, path) == ("get", "/v1/webhook-events"):
            assert security == [CONNECTION, CLIENT_ONLY]  # access_token narrows to one connection
        else:
            assert security == [CONNECTION], f"{method} {path}"


async def test_429_and_503_document_when_to_retry(spec):
    for (method, path), operation in _v1_operations(spec).items():
        limited = operation["responses"]["429"]["headers"]
        assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= set(limited), f"{method} {path}"
        assert limited["Retry-After"]["required"] is True
        assert "Retry-After" in operation["responses"]["503"]["headers"], f"{method} {path}"


async def test_create_task_links_to_reading_its_task_and_job(spec):
    links = spec["paths"]["/v1/tasks"]["post"]["responses"]["202"]["links"]
    assert links["GetTask"] == {
        "operationId": "get_task",
        "parameters": {"task_id": "$response.body#/task_id"},
    }
    assert links["GetJob"] == {"operationId": "get_job", "parameters": {"job_id": "$response.body#/job_id"}}
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert {"get_task", "get_job", "create_task"} <= operation_ids


async def test_request_bodies_refuse_unknown_fields_and_blank_required_strings(spec):
    body = _body_schema(spec, spec["paths"]["/v1/tasks"]["post"])
    assert body["additionalProperties"] is False
    assert re.fullmatch(body["properties"]["description"]["pattern"], " \n ") is None
    assert re.fullmatch(body["properties"]["patient_mrn"]["pattern"], " MRN-1 ")
    assert re.fullmatch(body["properties"]["patient_mrn"]["pattern"], "MRN\u200b1") is None
    settings = _body_schema(spec, spec["paths"]["/v1/settings"]["post"])
    reference = settings["properties"]["access_token_reference_id"]["pattern"]
    assert re.fullmatch(reference, " " + "r" * 255 + " ")  # counted after trimming, as the server does
    assert re.fullmatch(reference, "r" * 256) is None


async def test_the_three_cobalt_headers_are_documented_as_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    for name in ("client_id", "client_secret", "access_token"):
        assert schemes[name] == {"type": "apiKey", "in": "header", "name": name}


async def test_create_task_documents_its_body_and_202_answer(spec):
    operation = spec["paths"]["/v1/tasks"]["post"]
    body = _body_schema(spec, operation)
    assert set(body["properties"]) == {
        "description",
        "patient_mrn",
        "subject",
        "assignee_user_id",
        "phone_call_type_id",
        "notify_list",
    }
    assert set(body["required"]) == {"description", "patient_mrn"}
    assert _schema_ref(operation["responses"]["202"]) == "#/components/schemas/Accepted"


async def test_health_routes_are_documented(spec):
    assert "get" in spec["paths"]["/healthz"]
    assert _schema_ref(spec["paths"]["/readyz"]["get"]["responses"]["503"]) == ERROR_BODY


# --- routing failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v2/tasks", "/v1/tasks/abc/extra"])
async def test_an_unknown_route_is_404_with_the_contract_body(api, tenant, path):
    answer = await api.get(path, headers=tenant.a)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"success": False, "error": "not_found", "message": "Not found."}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/tasks", "POST"),
        ("GET", "/v1/tasks", "POST"),
        ("PUT", "/v1/settings", "GET, POST"),
        ("POST", "/v1/tasks/task_x", "GET"),
        ("POST", "/v1/webhook-events", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_a_wrong_method_is_405_with_the_contract_body(api, tenant, method, path, allowed):
    answer = await api.request(method, path, headers=tenant.a)
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"success": False, "error": "method_not_allowed", "message": "Method Not Allowed"}
    # Every method of every route at the path, though GET and POST /v1/settings are two routes.
    assert answer.headers["allow"] == allowed


async def test_create_task_documents_its_credentials_and_idempotency_key(spec):
    operation = spec["paths"]["/v1/tasks"]["post"]
    assert operation["security"] == [{"client_id": [], "client_secret": [], "access_token": []}]
    assert {"client_id", "client_secret", "access_token"} <= set(spec["components"]["securitySchemes"])
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert "requestBody" in operation


async def test_link_token_create_documents_its_body_and_answer(spec):
    operation = spec["paths"]["/v1/link/token/create"]["post"]
    body = _body_schema(spec, operation)
    assert set(body["properties"]) == {
        "user_id",
        "org_id",
        "emr_name",
        "emr_instance_domain",
        "access_token",
        "callback_url",
        "reference_id",
    }
    assert set(body["required"]) == {"user_id", "org_id"}
    assert _schema_ref(operation["responses"]["200"]) == "#/components/schemas/LinkTokenCreated"
    exchange = spec["paths"]["/v1/link/token/exchange"]["get"]
    assert [p["name"] for p in exchange["parameters"]] == ["public_token"]
    named = {name for requirement in exchange["security"] for name in requirement}
    assert named == {"client_id", "client_secret"}  # as every client-credentials route; no access_token
