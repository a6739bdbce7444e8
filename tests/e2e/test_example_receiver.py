"""`examples/receiver.py` against a real `emrtasks serve`: it verifies every delivery (Standard Webhooks,
or Cobalt's header with `--cobalt`), prints each with its attempt number, a resent event too, and
refuses a delivery that does not verify."""

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emrtasks.webhooks import signing
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"
TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}


class Example:
    """`python examples/receiver.py <port> [--cobalt]` with the secret; its printed lines, in order."""

    def __init__(self, port: int, secret: str, *flags: str) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.lines: queue.Queue[str] = queue.Queue()
        self._process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(port), *flags],
            env={"WEBHOOK_SECRET": secret, "PATH": ""},
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line().startswith(f"listening on {self.url}")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 30.0) -> str:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@pytest.fixture
def hooks(service):
    service.env.update(
        {
            "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
            "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
            "EMRTASKS_WORKER_POLL_SECONDS": "0.1",
        }
    )
    service.start()
    client = service.cli("clients", "create", "--name", "example")
    connection = service.cli("connections", "create", "--client-id", client["client_id"])
    headers = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    with httpx.Client(base_url=service.url, timeout=10) as http:
        yield http, headers, {**headers, "access_token": connection["access_token"]}


@pytest.fixture
def examples(hooks) -> Iterator[dict[str, Example]]:
    """Two of them, each at a URL registered before it starts (it needs the secret registration answers)."""
    http, client_headers, _ = hooks
    started: dict[str, Example] = {}
    try:
        for name, flags in (("standard", ()), ("cobalt", ("--cobalt",))):
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            registered = http.post("/v1/webhook", json={"webhook_url": url}, headers=client_headers)
            assert registered.status_code == 201, registered.text
            started[name] = Example(port, registered.json()["webhook_secret"], *flags)
        yield started
    finally:
        for example in started.values():
            example.close()


def test_the_example_prints_each_delivery_and_a_resend_with_its_attempt(hooks, examples):
    http, client_headers, headers = hooks
    task = http.post("/v1/tasks", json=TASK, headers=headers).json()
    first = {name: example.next_line() for name, example in examples.items()}
    event = http.get("/v1/webhook-events", params={"job_id": task["job_id"]}, headers=headers).json()
    [event_id] = [e["id"] for e in event["webhook_events"]]
    assert http.post(f"/v1/webhook-events/{event_id}/retry", headers=client_headers).status_code == 202
    again = {name: example.next_line() for name, example in examples.items()}
    for name in examples:
        assert first[name].startswith(f"verified task.created {event_id} (attempt 1): {{")
        assert task["task_id"] in first[name]
        assert again[name].startswith(f"verified task.created {event_id} (attempt 2, received before): {{")


def test_the_example_refuses_a_delivery_signed_with_another_secret(examples):
    body = b'{"id":"evt_1","type":"task.created","data":{}}'
    forged = signing.headers(
        secrets=[signing.new_secret()],
        msg_id="evt_1",
        timestamp=int(time.time()),
        body=body,
        attempt=1,
        user_agent="t",
    )
    with httpx.Client(timeout=10) as http:
        for name, example in examples.items():
            assert http.post(example.url, content=body, headers=forged).status_code == 401
            assert example.next_line().startswith("rejected evt_1 (attempt 1): "), name
