"""A client generated from the running server's /openapi.json by `openapi-python-client` (a maintained
generator, not ours) works against that server: it creates a task, reads the task and its job back, and
reads a refusal as the error body. Proof that the document is usable as it is, by code that knows
nothing of ours."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service

GENERATOR = shutil.which("openapi-python-client")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        GENERATOR is None, reason="openapi-python-client is not installed (pip install -e '.[dev]')"
    ),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
PACKAGE = "emrtasks_generated_client"


@pytest.fixture
def generated(service: Service, tmp_path: Path):
    """The generated package, imported from a temporary directory."""
    service.start("--no-worker")
    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(f"{service.url}/openapi.json", timeout=10).content)
    assert GENERATOR is not None
    done = subprocess.run(
        [
            GENERATOR,
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # every schema understood
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_creates_a_task_and_reads_it_and_its_job_back(service, generated):
    headers = service.connect("sandbox", {}, name="generated", rules="subject_assignee")
    create_task = importlib.import_module(f"{PACKAGE}.api.tasks.create_task")
    get_task = importlib.import_module(f"{PACKAGE}.api.tasks.get_task")
    get_job = importlib.import_module(f"{PACKAGE}.api.tasks.get_job")
    models = importlib.import_module(f"{PACKAGE}.models")
    body = models.CreateTaskRequest(
        description="Review recent lab results.",
        patient_mrn="MRN-1001",
        subject="Follow-up appointment needed",
        assignee_user_id="usr_1001",
    )
    with generated.Client(base_url=service.url, headers=headers, raise_on_unexpected_status=True) as client:
        accepted = create_task.sync(client=client, body=body, idempotency_key="generated-1")
        assert isinstance(accepted, models.Accepted)
        assert accepted.task_id.startswith("task_")

        found = get_task.sync(client=client, task_id=accepted.task_id)
        assert isinstance(found, models.TaskResponse)
        assert found.task.task_id == accepted.task_id
        assert found.task.status == "processing"  # no worker runs here
        assert found.task.assignee_user_id == "usr_1001"

        job = get_job.sync(client=client, job_id=accepted.job_id)
        assert isinstance(job, models.JobResponse)
        assert (job.job.kind, job.job.task_id) == ("create_task", accepted.task_id)


def test_a_generated_client_reads_a_refusal_as_the_error_body(service, generated):
    headers = service.connect("sandbox", {}, name="generated", rules="subject_assignee")
    create_task = importlib.import_module(f"{PACKAGE}.api.tasks.create_task")
    models = importlib.import_module(f"{PACKAGE}.models")
    body = models.CreateTaskRequest(description="No subject.", patient_mrn="MRN-1001")
    with generated.Client(base_url=service.url, headers=headers, raise_on_unexpected_status=True) as client:
        answer = create_task.sync_detailed(client=client, body=body)
    assert answer.status_code == 400
    assert isinstance(answer.parsed, models.ErrorBody)
    assert answer.parsed.error == "missing_field"
    assert {e.field for e in answer.parsed.errors} == {"subject", "assignee_user_id"}
