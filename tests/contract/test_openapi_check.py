"""The OpenAPI request checker the vendor fakes stand behind: it refuses what a spec refuses, naming it."""

import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import openapi_check

OAS3 = {
    "openapi": "3.0.3",
    "paths": {
        "/api/tasks": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}},
                }
            },
            "get": {"parameters": [{"name": "page", "in": "query", "schema": {"type": "integer"}}]},
        },
        "/api/tasks/{id}": {
            "get": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
            }
        },
        "/api/tasks/mine": {"get": {}},
    },
    "components": {
        "schemas": {
            "Task": {
                "type": "object",
                "required": ["title", "status"],
                "properties": {
                    "title": {"type": "string", "maxLength": 10},
                    "status": {"type": "integer"},
                    "note": {"type": "string", "nullable": True},
                },
            }
        }
    },
}

SWAGGER2 = {
    "swagger": "2.0",
    "basePath": "/",
    "paths": {
        "/notes": {
            "post": {
                "parameters": [
                    {"name": "body", "in": "body", "required": True, "schema": {"$ref": "#/definitions/Note"}}
                ]
            }
        }
    },
    "definitions": {
        "Note": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
    },
}


def _problems(spec, method, path, body=None, query="", content_type="application/json"):
    raw = json.dumps(body).encode() if body is not None else b""
    return openapi_check.Spec(spec).problems(method, path, query, content_type, raw)


def test_a_body_the_spec_accepts_has_no_problems():
    assert _problems(OAS3, "POST", "/api/tasks", {"title": "Call", "status": 1, "note": None}) == []
    assert _problems(OAS3, "GET", "/api/tasks/12") == []
    assert _problems(OAS3, "GET", "/api/tasks", query="page=2") == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"status": 1}, "'title' is a required property"),
        ({"title": "Call", "status": "open"}, "status"),
        ({"title": "far too long a title", "status": 1}, "title"),
    ],
)
def test_a_body_the_spec_refuses_is_named(body, named):
    problems = _problems(OAS3, "POST", "/api/tasks", body)
    assert problems and named in problems[0], problems


def test_unknown_operations_query_parameters_and_path_types_are_refused():
    assert "no such operation" in _problems(OAS3, "DELETE", "/api/tasks/1")[0]
    assert "'verbose' is not in the spec" in _problems(OAS3, "GET", "/api/tasks", query="verbose=1")[0]
    assert "path parameter 'id'" in _problems(OAS3, "GET", "/api/tasks/abc")[0]
    assert (
        "not accepted"
        in _problems(OAS3, "POST", "/api/tasks", {"title": "x", "status": 1}, content_type="text/plain")[0]
    )
    assert "required" in _problems(OAS3, "POST", "/api/tasks")[0]


def test_a_literal_path_wins_over_a_template():
    assert openapi_check.Spec(OAS3).operation("GET", "/api/tasks/mine").template == "/api/tasks/mine"


def test_swagger_2_body_parameters_are_checked():
    assert _problems(SWAGGER2, "POST", "/notes", {"text": "hi"}) == []
    assert "'text' is a required property" in _problems(SWAGGER2, "POST", "/notes", {})[0]


async def test_the_middleware_answers_400_and_records_what_it_refused():
    async def create(request):
        return JSONResponse({"id": 1}, status_code=201)

    app = Starlette(routes=[Route("/api/tasks", create, methods=["POST"])])
    violations: list[str] = []
    checked = openapi_check.SpecCheck(app, openapi_check.Spec(OAS3), violations)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=checked), base_url="http://x") as http:
        good = await http.post("/api/tasks", json={"title": "Call", "status": 1})
        bad = await http.post("/api/tasks", json={"title": "Call"})
    assert good.status_code == 201
    assert bad.status_code == 400 and "status" in bad.json()["spec_violations"][0]
    assert len(violations) == 1


CREATED_ONLY = {
    "openapi": "3.0.0",
    "paths": {
        "/api/tasks": {
            "post": {
                "parameters": [{"name": "status", "in": "query", "schema": {"type": "integer"}}],
                "responses": {
                    "201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/T"}}}}
                },
            }
        },
        "/api/threads": {
            "get": {
                "parameters": [
                    {
                        "name": "practice",
                        "in": "query",
                        "style": "form",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    }
                ]
            }
        },
    },
    "components": {
        "schemas": {
            "T": {
                "type": "object",
                "required": ["title"],
                "properties": {"title": {"type": "string"}, "id": {"type": "integer", "readOnly": True}},
            }
        }
    },
}


def test_a_create_described_only_by_its_answer_is_checked_against_it_when_asked():
    lax = openapi_check.Spec(CREATED_ONLY)
    strict = openapi_check.Spec(CREATED_ONLY, body_from_response=True)

    def problems(spec, body):
        return spec.problems("POST", "/api/tasks", "", "application/json", json.dumps(body).encode())

    assert problems(lax, {"id": 3}) == []  # no requestBody: nothing to check against
    assert problems(strict, {"title": "Call"}) == []
    assert "'title' is a required property" in problems(strict, {})[0]
    assert any("id" in p for p in problems(strict, {"title": "Call", "id": 3}))  # readOnly


def test_array_query_parameters_are_split_and_each_item_checked():
    spec = openapi_check.Spec(CREATED_ONLY)
    assert spec.problems("GET", "/api/threads", "practice=65540,7", "", b"") == []
    assert "practice" in spec.problems("GET", "/api/threads", "practice=abc", "", b"")[0]


def test_documents_split_by_area_merge_and_refuse_clashing_components():
    one = {"openapi": "3.1.0", "paths": {"/a": {}}, "components": {"schemas": {"X": {"type": "string"}}}}
    two = {"openapi": "3.1.0", "paths": {"/b": {}}, "components": {"schemas": {"X": {"type": "string"}}}}
    both = openapi_check.merged(one, two)
    assert list(both["paths"]) == ["/a", "/b"] and both["components"]["schemas"] == {"X": {"type": "string"}}
    with pytest.raises(ValueError, match="X"):
        openapi_check.merged(one, {"paths": {}, "components": {"schemas": {"X": {"type": "integer"}}}})
