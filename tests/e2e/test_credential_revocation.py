"""Two processes on one database: `emrtasks serve` caching credentials (5 s by default) and the CLI
disabling, rotating and deleting them. Each change must be refused by serve within a second (on
PostgreSQL the CLI's NOTIFY reaches serve's listener; the generation poll backs it up), and the audit
trail must show who did it and the reads before it."""

import json
import subprocess
import sys
import time

import httpx

from tests.conftest import SUBJECT_TASK
from tests.e2e.conftest import Service

BOUND_SECONDS = 1.0


def _refused_within_bound(http: httpx.Client, headers: dict[str, str]) -> None:
    """Polls until 401; fails if the credential is still accepted once the bound has passed."""
    deadline = time.monotonic() + BOUND_SECONDS
    while True:
        status = http.get("/v1/tasks/requirements", headers=headers).status_code
        if status == 401:
            return
        assert status == 200
        assert time.monotonic() < deadline, "still accepted a second after the change"
        time.sleep(0.02)


def _audit_lines(service: Service, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "emrtasks.cli", "audit", "list", *args],
        env=service.env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def test_revocations_reach_a_running_serve_within_a_second(service: Service) -> None:
    service.start()
    client = service.cli("clients", "create", "--name", "revoke")
    first = service.cli("connections", "create", "--client-id", client["client_id"])
    second = service.cli("connections", "create", "--client-id", client["client_id"])
    base = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    a = {**base, "access_token": first["access_token"]}
    b = {**base, "access_token": second["access_token"]}
    with httpx.Client(base_url=service.url, timeout=10) as http:
        accepted = http.post("/v1/tasks", headers=a, json=SUBJECT_TASK).json()
        assert http.get(f"/v1/tasks/{accepted['task_id']}", headers=a).status_code == 200
        assert http.get("/v1/tasks/requirements", headers=b).status_code == 200  # cached in serve

        service.cli("connections", "disable", "--connection-id", first["connection_id"])
        _refused_within_bound(http, a)
        assert http.get("/v1/tasks/requirements", headers=b).status_code == 200

        rotated = service.cli("connections", "rotate-token", "--connection-id", second["connection_id"])
        _refused_within_bound(http, b)
        b = {**base, "access_token": rotated["access_token"]}
        assert http.get("/v1/tasks/requirements", headers=b).status_code == 200

        service.cli("clients", "disable", "--client-id", client["client_id"])
        _refused_within_bound(http, b)
        service.cli("clients", "enable", "--client-id", client["client_id"])
        assert http.get("/v1/tasks/requirements", headers=b).status_code == 200

        service.cli("clients", "delete", "--client-id", client["client_id"])
        _refused_within_bound(http, b)

    trail = _audit_lines(service, "--client-id", client["client_id"])
    actions = [(row["action"], row["actor_type"]) for row in trail]
    assert actions.index(("task.accept", "connection")) < actions.index(("task.read", "connection"))
    assert actions.index(("task.read", "connection")) < actions.index(("connection.disable", "operator"))
    for change in ("connection.rotate_token", "client.disable", "client.enable", "client.delete"):
        assert (change, "operator") in actions
    disabled = _audit_lines(service, "--action", "connection.disable")
    assert [row["connection_id"] for row in disabled] == [first["connection_id"]]
    assert str(disabled[0]["actor_id"]).startswith("cli:")
