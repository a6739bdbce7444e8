"""Every EMR's rules, taken on by the sandbox: the requirements it shows and the missing field it names."""

import pytest

from emrtasks import emr
from emrtasks.service import admin

REAL_EMRS = sorted(name for name in emr.MODULES if name != "sandbox")


@pytest.mark.parametrize("emr_name", REAL_EMRS)
async def test_the_sandbox_takes_on_each_emrs_rules_and_names_a_missing_field(api, runtime, tenant, emr_name):
    rules = emr.rules_for(emr_name, None)
    created = await admin.create_connection(
        runtime.ctx, client_id=tenant.client_id, emr="sandbox", rules=emr_name, reference_id=None, settings={}
    )
    headers = tenant.headers(created.access_token)
    shown = (await api.get("/v1/tasks/requirements", headers=headers)).json()["requirements"]
    assert (shown["emr"], shown["rules"]) == (emr_name, emr_name)
    assert shown["required"] == list(rules.required)
    assert shown["unsupported"] == list(rules.unsupported)
    complete = {
        "description": "Call back",
        "patient_mrn": "MRN-1001",
        "subject": "S",
        "assignee_user_id": "usr_1001",
        "phone_call_type_id": "pct_01",
        "notify_list": ["usr_1002"],
    }
    supported = {k: v for k, v in complete.items() if k in rules.required or k in rules.optional}
    for field in rules.required:
        body = {k: v for k, v in supported.items() if k != field}
        answer = await api.post("/v1/tasks", json=body, headers=headers)
        assert (answer.status_code, answer.json()["message"]) == (400, f"Missing required field: {field}")
    for field in rules.unsupported:
        answer = await api.post("/v1/tasks", json={**supported, field: complete[field]}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"] == "unsupported_field"
