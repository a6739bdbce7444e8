"""Packaging check for CI: build the wheel, install it into a fresh virtual environment (the locked
runtime requirements, then the wheel alone), and from there run `emrtasks serve` and create one task
in the sandbox EMR. It proves the package works outside the checkout (every module, migration,
template and static file shipped). Run: `python tests/packaging/wheel_serves.py`; exits non-zero on
any failure and prints what it did."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASK = {
    "subject": "Follow-up",
    "description": "Review labs",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1001",
}


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="emrtasks-wheel-") as scratch:
        where = Path(scratch)
        wheel = build_wheel(where / "dist")
        venv = install_into_fresh_venv(wheel, where / "venv")
        run_dir = where / "run"  # no checkout here: the venv is the only place to import emrtasks from
        run_dir.mkdir()
        env = clean_env()
        where_from = "import emrtasks; print(emrtasks.__file__)"
        shipped = _run([venv / "bin" / "python", "-c", where_from], run_dir, env)
        assert shipped.startswith(str(venv)), f"emrtasks was imported from {shipped}, not the venv"
        task_id = serve_and_create_a_task(venv / "bin" / "emrtasks", run_dir, env)
    took = time.monotonic() - started
    print(f"wheel {wheel.name}: installed, served, task {task_id} created in {took:.0f} s")
    return 0


def build_wheel(out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)], ROOT, None)
    [wheel] = out.glob("emrtasks-*.whl")
    return wheel


def install_into_fresh_venv(wheel: Path, venv: Path) -> Path:
    # No pip of its own (seconds saved): this pip installs into it. No bytecode compiled ahead: it
    # would only make the check slower.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], ROOT, None)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    pip += ["--disable-pip-version-check", "--no-compile"]
    _run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")], ROOT, None)
    _run([*pip, "--no-deps", str(wheel)], ROOT, None)
    return venv


def clean_env() -> dict[str, str]:
    """This process's environment without the checkout on the path or settings of another run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("EMRTASKS_")}
    env["EMRTASKS_LOG_LEVEL"] = "WARNING"
    return env


def serve_and_create_a_task(emrtasks: Path, run_dir: Path, env: dict[str, str]) -> str:
    _run([emrtasks, "db", "upgrade"], run_dir, env)  # operator commands never make a new database
    client = json.loads(_run([emrtasks, "clients", "create", "--name", "packaging"], run_dir, env))
    create = [emrtasks, "connections", "create", "--client-id", client["client_id"], "--emr", "sandbox"]
    connection = json.loads(_run([*create, "--rules", "subject_assignee"], run_dir, env))
    headers = {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "access_token": connection["access_token"],
        "content-type": "application/json",
    }
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([emrtasks, "serve", "--port", str(port)], cwd=run_dir, env=env)
    try:
        _until(lambda: _get(f"{base}/healthz", {})[0] == 200, "the server answering /healthz")
        status, accepted = _post(f"{base}/v1/tasks", TASK, headers)
        assert status == 202, (status, accepted)
        task_url = f"{base}/v1/tasks/{accepted['task_id']}"
        _until(lambda: _get(task_url, headers)[1]["task"]["status"] == "created", "the task being created")
        return str(accepted["task_id"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run(command: list, cwd: Path, env: dict[str, str] | None) -> str:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, command))}")
    print(f"{time.monotonic() - started:5.1f} s  {' '.join(str(c) for c in command[:4])} ...", flush=True)
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    return _call(urllib.request.Request(url, headers=headers))


def _post(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    return _call(urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST"))


def _call(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


if __name__ == "__main__":
    sys.exit(main())
