"""`emrtasks demo`: a client, two sandbox connections, three tasks over real HTTP, and what became of them;
then Link: a link token and its Link URL, a sandbox clinic linked as the Link page would do it, the
public token exchanged for an access token, and a task created with it."""

import asyncio
import contextlib
import json
import shlex
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from emrtasks.service import admin, link
from emrtasks.service.context import Context

_TERMINAL = {"created", "failed", "unknown"}


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(ctx: Context, app: FastAPI, *, database: str, serve_url: str) -> int:
    """The tour, on `app` served on a free loopback port; the curl lines at the end for `serve_url`.
    `database` names where the demo data goes, for the reader."""
    print(f"The demo writes a client, connections and tasks into the database {database}.")
    client = await admin.create_client(ctx, "demo client")
    _step("Created a client app (the secret is shown once and stored only as a hash)")
    _show({"client_id": client.client_id, "client_secret": client.client_secret})
    clinic_a = await _connect(ctx, client, "subject_assignee", "demo-clinic-a")
    clinic_b = await _connect(ctx, client, "phone_call", "demo-clinic-b")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _QuietServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.01)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            first = await _tour(http, client, clinic_a, clinic_b)
            await _link_tour(ctx, http, client)
    finally:
        server.should_exit = True
        await serving
    _replay(serve_url.rstrip("/"), client, clinic_a, first)
    return 0


async def _connect(ctx: Context, client: Any, rules: str, reference: str) -> admin.NewConnection:
    connection = await admin.create_connection(
        ctx,
        client_id=client.client_id,
        emr="sandbox",
        rules=rules,
        reference_id=reference,
        settings={},
    )
    _step(f"Created a sandbox connection with '{rules}' rules (reference id {reference})")
    _show({"connection_id": connection.connection_id, "access_token": connection.access_token})
    return connection


async def _tour(
    http: httpx.AsyncClient,
    client: admin.NewClient,
    clinic_a: admin.NewConnection,
    clinic_b: admin.NewConnection,
) -> dict[str, Any]:
    """The tour of the API; the answer to its first task, for the curl lines at the end."""
    headers_a = _headers(client, clinic_a)
    headers_b = _headers(client, clinic_b)
    for name, headers in (("subject_assignee", headers_a), ("phone_call", headers_b)):
        found = (await http.get("/v1/tasks/requirements", headers=headers)).json()["requirements"]
        _step(f"GET /v1/tasks/requirements on the '{name}' connection")
        _show({"required": found["required"], "optional": found["optional"]})
    sent = [
        await _post(http, headers_a, "A task with a subject and an assignee", _TASK_A),
        await _post(http, headers_b, "A phone-call task with a call type and a notify list", _TASK_B),
        await _post(http, headers_a, "A task for an MRN the EMR does not know", _TASK_UNKNOWN_MRN),
    ]
    await _post(http, headers_a, "A task missing its subject (refused at once)", _TASK_NO_SUBJECT)
    for headers, answer in sent:
        task = await _wait_for(http, headers, answer["task_id"])
        _step(f"GET /v1/tasks/{task['task_id']}  ->  status {task['status']}")
        _show({k: task[k] for k in ("status", "emr_task_id", "failure_reason", "reasons")})
        events = await http.get("/v1/webhook-events", params={"job_id": answer["job_id"]}, headers=headers)
        _step(f"GET /v1/webhook-events?job_id={answer['job_id']}  (the event a webhook carries)")
        _show(events.json()["webhook_events"])
    held = (await http.get("/v1/sandbox/emr-tasks", headers=headers_a)).json()["emr_tasks"]
    _step("GET /v1/sandbox/emr-tasks: what the sandbox EMR now holds, marked with our task_id")
    _show([{k: t[k] for k in ("emr_task_id", "marker", "subject", "patient_mrn")} for t in held])
    return sent[0][1]


async def _post(
    http: httpx.AsyncClient, headers: dict[str, str], title: str, body: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    answer = await http.post("/v1/tasks", json=body, headers=headers)
    _step(f"POST /v1/tasks: {title}")
    _show(body)
    print(f"  -> HTTP {answer.status_code}")
    _show(answer.json())
    return headers, answer.json()


async def _wait_for(http: httpx.AsyncClient, headers: dict[str, str], task_id: str) -> Any:
    for _ in range(200):
        task = (await http.get(f"/v1/tasks/{task_id}", headers=headers)).json()["task"]
        if task["status"] in _TERMINAL:
            return task
        await asyncio.sleep(0.05)
    return task


async def _link_tour(ctx: Context, http: httpx.AsyncClient, client: admin.NewClient) -> None:
    creds = {"client_id": client.client_id, "client_secret": client.client_secret}
    body = {"user_id": "demo-user", "org_id": "demo-clinic-c", "reference_id": "demo-clinic-c"}
    for_you = await http.post("/v1/link/token/create", json=body, headers=creds)
    _step("POST /v1/link/token/create: a link token for a clinic to link its own EMR (Link)")
    _show(body)
    _show(for_you.json())
    print(f"  Open {for_you.json()['link_url']} in a browser while `emrtasks serve` runs")
    print("  (it works for 30 minutes, once; pick the sandbox EMR).")
    created = await http.post("/v1/link/token/create", json={**body, "emr_name": "sandbox"}, headers=creds)
    token = created.json()["token"]
    _step("Another link token, with the sandbox preselected; the clinic submits the Link page")
    result = await link.submit_credentials(ctx, token, "sandbox", "subject_assignee", {})
    _show({"ok": result.ok, "public_token": result.public_token, "message": result.message})
    exchanged = await http.get(
        "/v1/link/token/exchange", params={"public_token": result.public_token}, headers=creds
    )
    _step("GET /v1/link/token/exchange?public_token=...: the clinic's access token, for the client app")
    _show(exchanged.json())
    again = await http.get(
        "/v1/link/token/exchange", params={"public_token": result.public_token}, headers=creds
    )
    _step("The same public token again: it works once")
    print(f"  -> HTTP {again.status_code}")
    _show(again.json())
    headers = {**creds, "access_token": exchanged.json()["token"]}
    _, answer = await _post(http, headers, "A task through the linked clinic's access token", _TASK_A)
    task = await _wait_for(http, headers, answer["task_id"])
    _step(f"GET /v1/tasks/{task['task_id']}  ->  status {task['status']}")


def _replay(base: str, client: admin.NewClient, clinic: admin.NewConnection, first: dict[str, Any]) -> None:
    _step(f"Do it again yourself: with `emrtasks serve` answering on {base} from this same database")
    print("   (this folder, or the same EMRTASKS_DATABASE_URL and EMRTASKS_KEY_FILE), paste:")
    headers = " ".join(f"-H {shlex.quote(f'{k}: {v}')}" for k, v in _headers(client, clinic).items())
    body = shlex.quote(json.dumps(_TASK_A))
    events = shlex.quote(f"{base}/v1/webhook-events?job_id={first['job_id']}")
    for line in (
        f"{base}/v1/tasks -H 'content-type: application/json' {headers} -d {body}",
        f"{base}/v1/tasks/{first['task_id']} {headers}",
        f"{base}/v1/jobs/{first['job_id']} {headers}",
        f"{events} {headers}",
        f"{base}/v1/users {headers}",
    ):
        print(f"  curl -s {line}")


def _headers(client: admin.NewClient, connection: admin.NewConnection) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "access_token": connection.access_token,
    }


_counter = iter(range(1, 100))


def _step(title: str) -> None:
    print(f"\n{next(_counter)}. {title}")


def _show(value: object) -> None:
    for line in json.dumps(value, indent=2).splitlines():
        print(f"   {line}")


_TASK_A = {
    "subject": "Follow-up appointment needed",
    "description": "Schedule a follow-up to review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}
_TASK_B = {
    "description": "Patient called asking for a refill of lisinopril.",
    "patient_mrn": "MRN-1002",
    "phone_call_type_id": "pct_01",
    "notify_list": ["usr_1003", "grp_2001"],
}
_TASK_UNKNOWN_MRN = {**_TASK_A, "patient_mrn": "MRN-9999"}
_TASK_NO_SUBJECT = {k: v for k, v in _TASK_A.items() if k != "subject"}
