"""An EMR that refuses a connection's credentials: the connection turns login_required, its requests
get the contract's 403, and `connections update` makes it active again."""

from emrtasks.domain import outcomes
from emrtasks.service import admin
from tests.conftest import SUBJECT_TASK

LOGIN_REQUIRED_BODY = {
    "success": False,
    "error": "login_required",
    "message": "Account link expired. Please go through the integration setup again.",
}


async def test_a_refused_credential_marks_the_connection_and_an_update_repairs_it(
    api, runtime, tenant, monkeypatch
):
    async def refused(connection, **_kwargs):
        raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, "invalid_client"))

    monkeypatch.setattr(runtime.ctx.adapters, "directory", refused)
    first = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    assert (first.status_code, first.json()) == (403, LOGIN_REQUIRED_BODY)
    monkeypatch.undo()
    later = await api.get("/v1/users", headers=tenant.a)  # the EMR is not asked again: the link is broken
    assert (later.status_code, later.json()) == (403, LOGIN_REQUIRED_BODY)
    repaired = await admin.update_connection(runtime.ctx, tenant.connection_a, settings={}, reference_id=None)
    assert repaired.status == "active"
    assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
