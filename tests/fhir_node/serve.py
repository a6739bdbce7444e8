"""Start the independent FHIR server (Medplum's FHIR router, `server.mjs` here) on loopback for a test.

It needs `node` (20.19 or later) and this folder's `node_modules` (`npm ci` here; `.ci/run` does it).
Without them the tests that use it skip, naming what is missing, so the suite still passes on a bare
machine; `.ci/run` sets EMRTASKS_REQUIRE_FHIR_SERVER so that in CI they fail instead of skipping.
"""

import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CANVAS_SEARCH_PARAMETERS = HERE / "canvas-search-parameters.json"
_READY_SECONDS = 30


NODE_AT_LEAST = (20, 19)  # @medplum/fhir-router 4.x: "engines": {"node": "^20.19.0 || >=22.12.0"}
REQUIRED = "EMRTASKS_REQUIRE_FHIR_SERVER"
"""Set (as `.ci/run` does) to fail rather than skip when the server cannot run."""


def missing() -> str | None:
    """Why the server cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (the independent FHIR server needs Node 20.19 or later)"
    found = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout
    version = tuple(int(part) for part in found.strip().lstrip("v").split(".")[:2] if part.isdigit())
    if version < NODE_AT_LEAST:
        return f"node {found.strip()} is too old for Medplum (20.19 or later)"
    if not (HERE / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return f"Medplum is not installed: run `npm ci` in {HERE}"
    return None


def version() -> str:
    """The installed @medplum/fhir-router version (pinned in package-lock.json)."""
    import json

    return str(json.loads((HERE / "node_modules/@medplum/fhir-router/package.json").read_text())["version"])


@contextmanager
def medplum(token: str | None = None, search_parameters: tuple[Path, ...] = ()) -> Iterator[str]:
    """The server in its own process on a free loopback port; yields its base URL, stops it after."""
    reason = missing()
    if reason and os.environ.get(REQUIRED):
        pytest.fail(f"{REQUIRED} is set but {reason}")
    if reason:
        pytest.skip(reason)
    command = ["node", str(HERE / "server.mjs"), "--port", "0"]
    if token:
        command += ["--token", token]
    for path in search_parameters:
        command += ["--search-parameters", str(path)]
    process = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}, text=True
    )
    try:
        yield f"http://127.0.0.1:{_port(process)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def _port(process: subprocess.Popen[str]) -> int:
    """The port the server prints (`listening <port>`) once it accepts connections."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if line.startswith("listening "):
                    return int(line.split()[1])
                if not line:
                    break
    process.kill()
    error = process.stderr.read() if process.stderr else ""
    raise RuntimeError(f"the FHIR server did not start: {error[-2000:]}")
