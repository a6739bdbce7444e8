"""Schemathesis against a running `emrtasks serve` on loopback, every check on: each answer has a documented
status, content type, headers and schema; a body the document calls invalid is refused, one it calls
valid is taken; no 500; unknown methods get 405 with an exact `Allow`; requests without credentials get
401. Links in the document (a created task to its task and job, a webhook endpoint to its operations)
drive the stateful phase.

The server runs without its worker (`--no-worker`) and takes any webhook URL without resolving it, so no
fuzzed URL is ever looked up or called: all traffic stays on loopback.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("schemathesis") is None, reason="schemathesis is not installed"
    ),
]

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Enough for every phase to reach each operation; the whole run stays well under a minute here.
MAX_EXAMPLES = "15"


def _schemathesis(service: Service, headers: dict[str, str], cwd: Path, *options: str) -> str:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--workers",
        "1",  # Hypothesis's lambda descriptions are not thread-safe on Python 3.11
        "--generation-database",
        "none",
        # Hypothesis draws strings from the id patterns (tests/unit/test_openapi_patterns.py) longer than
        # maxLength now and then, and its health check can call that too many drafts thrown away: a
        # verdict on the generator, not on the server.
        "--suppress-health-check",
        "filter_too_much",
        "--no-color",
        *(part for name, value in headers.items() for part in ("-H", f"{name}: {value}")),
        *options,
    ]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20_000:]
    return output


@pytest.fixture
def served(service: Service) -> Service:
    service.env.update({"EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true", "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true"})
    service.start("--no-worker")
    return service


def _connection(service: Service) -> dict[str, str]:
    # The sandbox with FHIR's rules: only description and patient_mrn are required, so generated bodies
    # often create tasks, and the links from them reach real tasks and jobs.
    return service.connect("sandbox", {}, name="fuzz", rules="fhir")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_operation_passes_every_schemathesis_check_against_serve(served, tmp_path):
    headers = _connection(served)
    output = _schemathesis(served, headers, tmp_path, "--exclude-operation-id", "revoke_access_token")
    summary = re.search(r"Test cases:\s*\n\s*(\d+) generated", output)
    assert summary is not None and int(summary.group(1)) > 200, output[-5000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert selected is not None, output[-5000:]
    assert int(selected.group(1)) == int(selected.group(2)) - 1  # all but revoke_access_token
    assert f"Tested: {selected.group(1)}" in output, output[-5000:]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_revoking_an_access_token_passes_every_schemathesis_check(served, tmp_path):
    # Alone and with a connection of its own: it deletes the connection whose token it is sent.
    headers = _connection(served)
    output = _schemathesis(
        served,
        headers,
        tmp_path,
        "--include-operation-id",
        "revoke_access_token",
        "--phases",
        "examples,coverage,fuzzing",  # no link leads to it
    )
    assert "Selected: 1/" in output and "Tested: 1" in output, output[-5000:]
    # A call with the right headers did revoke the token: it no longer opens anything.
    assert httpx.get(f"{served.url}/v1/settings", headers=headers, timeout=10).status_code == 401
