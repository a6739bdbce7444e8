"""The connection's EMR directory: GET /v1/tasks/requirements, /v1/users, /v1/phone-call-types,
/v1/patients (paginated; bad paging is a 400 naming the parameter, never 422 or 500)."""

import pytest

from tests.api.helpers import server_client
from tests.conftest import SUBJECT_TASK

USERS = [
    {"id": "usr_1001", "name": "Dr. Dana Reyes", "kind": "provider"},
    {"id": "usr_1002", "name": "Dr. Sam Okafor", "kind": "provider"},
    {"id": "usr_1003", "name": "Jordan Lee, RN", "kind": "staff"},
    {"id": "usr_1004", "name": "Taylor Brooks (front desk)", "kind": "staff"},
    {"id": "usr_1005", "name": "Morgan Diaz (billing)", "kind": "staff"},
    {"id": "grp_2001", "name": "Nursing pool", "kind": "group"},
]
CALL_TYPES = [
    {"id": "pct_01", "name": "Prescription refill"},
    {"id": "pct_02", "name": "Lab results"},
    {"id": "pct_03", "name": "Appointment request"},
    {"id": "pct_04", "name": "Billing question"},
    {"id": "pct_05", "name": "Clinical question"},
]
AVA = {
    "first_name": "Ava",
    "last_name": "Thompson",
    "dob": "1984-03-12",
    "sex": "F",
    "phone": "555-0100",
    "mrn": "MRN-1001",
}


def _pagination(current_page, total_pages, total_count, page_size):
    return {
        "current_page": current_page,
        "total_pages": total_pages,
        "total_count": total_count,
        "page_size": page_size,
    }


# --- requirements -----------------------------------------------------------------------------------


async def test_requirements_of_a_subject_assignee_connection(api, tenant):
    answer = await api.get("/v1/tasks/requirements", headers=tenant.a)
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    found = body["requirements"]
    assert found["emr"] == "sandbox"
    assert found["rules"] == "subject_assignee"
    assert found["required"] == ["description", "patient_mrn", "subject", "assignee_user_id"]
    assert found["optional"] == ["notify_list"]
    assert found["unsupported"] == ["phone_call_type_id"]
    assert found["fields"]["subject"] == {
        "required": True,
        "type": "string",
        "emr_field": "task.title",
        "max_length": 255,
    }
    assert found["fields"]["notify_list"]["type"] == "array of strings"
    assert found["fields"]["notify_list"]["max_items"] == 10


async def test_requirements_of_a_phone_call_connection(api, tenant):
    found = (await api.get("/v1/tasks/requirements", headers=tenant.b)).json()["requirements"]
    assert found["rules"] == "phone_call"
    assert found["required"] == ["description", "patient_mrn", "phone_call_type_id"]
    assert found["optional"] == ["subject", "assignee_user_id", "notify_list"]
    assert found["unsupported"] == []
    assert set(found["fields"]) == {
        "description",
        "patient_mrn",
        "subject",
        "assignee_user_id",
        "phone_call_type_id",
        "notify_list",
    }


# --- users and call types ---------------------------------------------------------------------------


@pytest.mark.parametrize("connection", ["a", "b"])
async def test_users_lists_every_emr_user_with_id_name_and_kind(api, tenant, connection):
    answer = await api.get("/v1/users", headers=getattr(tenant, connection))
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "users": USERS}


@pytest.mark.parametrize("connection", ["a", "b"])
async def test_phone_call_types_lists_every_type_with_id_and_name(api, tenant, connection):
    answer = await api.get("/v1/phone-call-types", headers=getattr(tenant, connection))
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "phone_call_types": CALL_TYPES}


async def test_every_listed_user_is_accepted_as_an_assignee(api, tenant):
    for user in USERS:
        body = {**SUBJECT_TASK, "assignee_user_id": user["id"]}
        assert (await api.post("/v1/tasks", json=body, headers=tenant.a)).status_code == 202


# --- patients ---------------------------------------------------------------------------------------


async def test_patients_by_mrn_returns_that_patient_in_the_cobalt_shape(api, tenant):
    answer = await api.get("/v1/patients", params={"mrn": "MRN-1001"}, headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "patients": [AVA], "pagination": _pagination(1, 1, 1, 50)}


async def test_patients_by_a_shared_mrn_returns_both_patients(api, tenant):
    body = (await api.get("/v1/patients", params={"mrn": "MRN-2000"}, headers=tenant.a)).json()
    assert [(p["mrn"], p["dob"]) for p in body["patients"]] == [
        ("MRN-2000", "1990-04-04"),
        ("MRN-2000", "1961-08-30"),
    ]
    assert body["pagination"] == _pagination(1, 1, 2, 50)


async def test_patients_by_an_unknown_mrn_is_an_empty_page(api, tenant):
    answer = await api.get("/v1/patients", params={"mrn": "MRN-0000"}, headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "patients": [], "pagination": _pagination(1, 1, 0, 50)}


@pytest.mark.parametrize("query", ["", "?mrn="], ids=["no mrn", "empty mrn"])
async def test_patients_without_an_mrn_lists_every_patient(api, tenant, query):
    body = (await api.get(f"/v1/patients{query}", headers=tenant.a)).json()
    assert body["pagination"] == _pagination(1, 1, 22, 50)
    mrns = [p["mrn"] for p in body["patients"]]
    assert mrns == [f"MRN-{n}" for n in range(1001, 1021)] + ["MRN-2000", "MRN-2000"]
    assert all(set(p) == set(AVA) for p in body["patients"])


async def test_patients_are_paginated_by_page_and_page_size(api, tenant):
    body = (await api.get("/v1/patients?page=2&page_size=5", headers=tenant.a)).json()
    assert [p["mrn"] for p in body["patients"]] == [f"MRN-{n}" for n in range(1006, 1011)]
    assert body["pagination"] == _pagination(2, 5, 22, 5)
    last = (await api.get("/v1/patients?page=5&page_size=5", headers=tenant.a)).json()
    assert [p["mrn"] for p in last["patients"]] == ["MRN-2000", "MRN-2000"]
    assert last["pagination"] == _pagination(5, 5, 22, 5)


async def test_a_page_past_the_end_is_empty_not_an_error(api, tenant):
    answer = await api.get("/v1/patients?page=7&page_size=5", headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "patients": [], "pagination": _pagination(7, 5, 22, 5)}


async def test_page_size_100_is_the_largest_accepted(api, tenant):
    answer = await api.get("/v1/patients?page_size=100", headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json()["pagination"] == _pagination(1, 1, 22, 100)


@pytest.mark.parametrize(
    ("query", "name", "reason"),
    [
        ("page=0", "page", "Input should be greater than or equal to 1"),
        ("page=-1", "page", "Input should be greater than or equal to 1"),
        ("page=abc", "page", "Input should be a valid integer, unable to parse string as an integer"),
        ("page=1.5", "page", "Input should be a valid integer, unable to parse string as an integer"),
        ("page=", "page", "Input should be a valid integer, unable to parse string as an integer"),
        ("page_size=0", "page_size", "Input should be greater than or equal to 1"),
        ("page_size=101", "page_size", "Input should be less than or equal to 100"),
        ("page_size=x", "page_size", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
async def test_bad_paging_is_400_naming_the_parameter(api, tenant, query, name, reason):
    answer = await api.get(f"/v1/patients?{query}", headers=tenant.a)
    assert answer.status_code == 400
    message = f"Invalid parameter {name}: {reason}."
    assert answer.json() == {
        "success": False,
        "error": "invalid_parameter",
        "message": message,
        "errors": [{"field": name, "code": "invalid_query", "message": message}],
    }


async def test_an_mrn_over_255_characters_is_400_naming_mrn(api, tenant):
    answer = await api.get("/v1/patients", params={"mrn": "M" * 256}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["message"].startswith("Invalid parameter mrn: ")
    assert [e["field"] for e in answer.json()["errors"]] == ["mrn"]


async def test_a_page_number_beyond_64_bits_is_400_naming_page(runtime, tenant):
    async with server_client(runtime) as client:
        answer = await client.get("/v1/patients?page=99999999999999999999", headers=tenant.a)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["message"].startswith("Invalid parameter page: ")


# Every list route refuses what it does not take: a filter left unapplied would answer the wrong list.
LIST_ROUTES = [
    ("/v1/users", "none", True),
    ("/v1/phone-call-types", "none", True),
    ("/v1/patients", "mrn, page, page_size", True),
    ("/v1/sandbox/emr-tasks", "marker", True),
    ("/v1/webhook", "none", False),
    (
        "/v1/webhook-events",
        "job_id, event_type, delivery_status, start_date, end_date, page, page_size, sort",
        False,
    ),
]


@pytest.mark.parametrize(("path", "takes", "needs_token"), LIST_ROUTES)
@pytest.mark.parametrize("name", ["last_name", "dob", "q", "MRN"])
async def test_every_list_route_refuses_a_query_parameter_it_does_not_take(
    api, tenant, path, takes, needs_token, name
):
    headers = tenant.a if needs_token else tenant.headers()
    answer = await api.get(path, params={name: "MRN-1001"}, headers=headers)
    assert answer.status_code == 400, answer.text
    message = f"Unexpected query parameter: {name} (this route takes {takes})."
    assert answer.json() == {
        "success": False,
        "error": "invalid_parameter",
        "message": message,
        "errors": [
            {"field": name, "code": "unexpected_query", "message": f"Unexpected query parameter: {name}."}
        ],
    }
    assert "MRN-1001" not in answer.text  # names the parameter, never its value


@pytest.mark.parametrize(("path", "takes", "needs_token"), LIST_ROUTES)
async def test_every_list_route_answers_its_own_parameters_and_none(api, tenant, path, takes, needs_token):
    headers = tenant.a if needs_token else tenant.headers()
    assert (await api.get(path, headers=headers)).status_code == 200
    params = {} if takes == "none" else {takes.split(", ")[0]: "1"}
    assert (await api.get(path, params=params, headers=headers)).status_code == 200


@pytest.mark.parametrize("query", ["mrn=MRN-1001&mrn=MRN-1002", "page=1&page=1"])
async def test_a_parameter_given_twice_is_400_naming_it(api, tenant, query):
    answer = await api.get(f"/v1/patients?{query}", headers=tenant.a)
    assert answer.status_code == 400
    name = query.split("=")[0]
    message = f"Invalid parameter {name}: given more than once."
    assert answer.json()["message"] == message
    assert answer.json()["errors"] == [{"field": name, "code": "invalid_query", "message": message}]


async def test_an_unknown_parameter_name_is_echoed_cut_to_64_characters(api, tenant):
    answer = await api.get("/v1/users", params={"p" * 500: "x"}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "p" * 61 + "..."
