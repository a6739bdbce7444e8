"""Two real `serve` processes with `--reuse-port` on one loopback port: the kernel spreads the
connections across them, and both answer from the one database."""

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}
CONNECTIONS = 40


def _pair(service: Service, tmp_path: Path) -> Service:
    """A second `serve` of the same settings and database, on the first one's port."""
    (tmp_path / "second").mkdir()
    second = Service(service.env, tmp_path / "second")
    second.port, second.url = service.port, service.url
    return second


def _wait_serving(service: Service) -> None:
    """Until this process says it serves (its /healthz check may have been answered by the other)."""
    deadline = time.monotonic() + 30
    while "emrtasks serving on" not in service.log():
        assert service.process is not None and service.process.poll() is None, service.log()
        assert time.monotonic() < deadline, "serve did not start:\n" + service.log()
        time.sleep(0.05)


def _readyz_answered(service: Service) -> int:
    """How many GET /readyz this process answered, from its own access log."""
    return len(re.findall(r'"GET /readyz HTTP/1\.1" 200', service.log()))


def test_two_serve_processes_share_one_port_and_both_answer(service, tmp_path):
    service.env = {**service.env, "EMRTASKS_ACCESS_LOG": "true", "EMRTASKS_LOG_LEVEL": "INFO"}
    headers = service.connect("sandbox", {}, rules="subject_assignee")
    second = _pair(service, tmp_path)
    service.start("--reuse-port")
    second.env = {**service.env, "EMRTASKS_REUSE_PORT": "true"}
    second.start()  # the setting, not the flag
    try:
        for process in (service, second):
            _wait_serving(process)
        for _ in range(CONNECTIONS):  # a new connection each time: the kernel picks a process per connection
            assert httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200
        answered = (_readyz_answered(service), _readyz_answered(second))
        assert sum(answered) == CONNECTIONS
        assert min(answered) > 0, answered
        with httpx.Client(base_url=service.url, timeout=10) as http:
            accepted = http.post("/v1/tasks", json=TASK, headers=headers)
            assert accepted.status_code == 202
        with httpx.Client(base_url=service.url, timeout=10) as http:  # perhaps the other process
            found = http.get(f"/v1/tasks/{accepted.json()['task_id']}", headers=headers)
            assert found.status_code == 200
    finally:
        stopped = second.stop()
    assert stopped == 0
    assert service.stop() == 0


def test_serve_without_reuse_port_cannot_join_a_shared_port(service):
    service.start("--reuse-port")
    done = subprocess.run(
        [sys.executable, "-m", "emrtasks.cli", "serve", "--port", str(service.port)],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"cannot serve on 127.0.0.1:{service.port}: the port is in use" in done.stderr
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200
