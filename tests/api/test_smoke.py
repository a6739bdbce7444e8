from tests.conftest import SUBJECT_TASK, drain


async def test_a_task_is_accepted_then_created_in_the_sandbox(api, tenant, runtime):
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    assert answer.status_code == 202
    await drain(runtime)
    task = (await api.get(f"/v1/tasks/{answer.json()['task_id']}", headers=tenant.a)).json()["task"]
    assert task["status"] == "created"
