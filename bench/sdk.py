"""What the Python SDK adds to a call, in client CPU (docs/sdk.md): the SDK against plain httpx, both on
one httpx.MockTransport answering at once, so only the client side is measured.

    python bench/sdk.py [--calls 5000]

Each line is the process CPU per call (µs), the median of 5 rounds: `create_task` (a key, the body,
the answer read into `TaskAccepted`) and `get_task` (the answer read into a frozen `Task`), each
beside the same request made with httpx and its JSON decoded.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python" / "src"))

import emrtasks_client as sdk  # from this tree, without installing it

ROUNDS = 5
ACCEPTED = {"success": True, "message": "Task processing.", "task_id": "task_1", "job_id": "job_1"}
TASK = {
    "task_id": "task_1",
    "job_id": "job_1",
    "status": "created",
    "subject": "Call back",
    "description": "Lab results are in.",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1001",
    "phone_call_type_id": None,
    "notify_list": ["usr_1002"],
    "emr_task_id": "emrtask_1",
    "failure_reason": None,
    "reasons": [],
    "created": "2026-11-30T11:50:27.342Z",
    "updated": "2026-11-30T11:50:27.362Z",
}
FIELDS = {
    "subject": "Call back",
    "description": "Lab results are in.",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1001",
}
HEADERS = {"client_id": "ci_1", "client_secret": "cs_1", "access_token": "at_1"}


def _answer(request: httpx.Request) -> httpx.Response:
    if request.method == "POST":
        return httpx.Response(202, json=ACCEPTED)
    return httpx.Response(200, json={"success": True, "task": TASK})


def _per_call(call: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(n):
            call()
        samples.append((time.process_time() - started) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    n = parser.parse_args().calls
    transport = httpx.MockTransport(_answer)
    client = sdk.Client("http://emrtasks.test", "ci_1", "cs_1", "at_1", transport=transport)
    http = httpx.Client(base_url="http://emrtasks.test", headers=HEADERS, transport=transport)
    rows = [
        ("create_task: SDK", lambda: client.create_task(**FIELDS)),
        ("create_task: httpx", lambda: http.post("/v1/tasks", json=FIELDS).json()),
        ("get_task: SDK", lambda: client.get_task("task_1")),
        ("get_task: httpx", lambda: http.get("/v1/tasks/task_1").json()),
    ]
    for name, call in rows:
        print(f"{name:<22} {_per_call(call, n):8.1f} µs CPU per call")


if __name__ == "__main__":
    main()
