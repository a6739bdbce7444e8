"""The command line as an operator meets it in the first hour: run as a real process in a fresh
directory, it names its database and key file, refuses to start an empty deployment by accident, and
says in one line what is wrong with a bad or unreachable database or a busy port."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

POSTGRES_URL = os.environ.get("EMRTASKS_TEST_DATABASE_URL")


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any EMRTASKS_ setting, plus `settings`; PYTHONPATH made
    absolute, since the commands run in another directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMRTASKS_")}
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep)
        )
    return {**env, **settings}


def emrtasks(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emrtasks", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a failed command (after the line naming its database)."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    found = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(found) == 1, done.stderr
    assert done.stderr.strip().endswith(found[0])
    return found[0]


def test_a_command_names_its_database_and_key_file_on_stderr(tmp_path):
    done = emrtasks(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    named = f"database sqlite+aiosqlite:///./emrtasks.db (file {tmp_path / 'emrtasks.db'})"
    assert named in done.stderr
    assert f"key file {tmp_path / 'emrtasks.key'}" in done.stderr
    listed = emrtasks(tmp_path, "clients", "list")
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")
    assert named in listed.stderr


def test_a_password_in_the_database_url_is_masked(tmp_path):
    url = f"postgresql+asyncpg://emr:s3cr3t-pw@127.0.0.1:{free_port()}/emrtasks"
    done = emrtasks(tmp_path, "db", "upgrade", env=clean_env(EMRTASKS_DATABASE_URL=url))
    assert "database postgresql+asyncpg://emr:***@127.0.0.1:" in done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout


def test_an_operator_command_in_a_fresh_directory_refuses_to_create_a_database(tmp_path):
    error = one_line_error(emrtasks(tmp_path, "clients", "create", "--name", "app"))
    assert f"no database at {tmp_path / 'emrtasks.db'}" in error
    assert "EMRTASKS_DATABASE_URL" in error
    assert f"the current directory is {tmp_path}" in error
    assert "`emrtasks clients create` does not create one" in error
    assert not (tmp_path / "emrtasks.db").exists()
    assert not (tmp_path / "emrtasks.key").exists()


def test_an_operator_command_refuses_to_create_a_key_file_beside_an_existing_database(tmp_path):
    assert emrtasks(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "emrtasks.key").unlink()
    error = one_line_error(emrtasks(tmp_path, "keys", "list"))
    assert f"no key file at {tmp_path / 'emrtasks.key'}" in error
    assert "EMRTASKS_KEY_FILE" in error and "EMRTASKS_ENCRYPTION_KEY" in error
    assert not (tmp_path / "emrtasks.key").exists()


def _database_with_a_secret(tmp_path: Path) -> None:
    """A database holding a sealed secret: a connection's EMR credentials."""
    assert emrtasks(tmp_path, "db", "upgrade").returncode == 0
    client = json.loads(emrtasks(tmp_path, "clients", "create", "--name", "app").stdout)["client_id"]
    config = '{"base_url": "https://openemr.example", "client_id": "x", "username": "u", "password": "p"}'
    made = emrtasks(
        tmp_path, "connections", "create", "--client-id", client, "--emr", "openemr", "--config", config
    )
    assert made.returncode == 0, made.stderr


def test_serve_refuses_to_make_a_new_key_beside_a_database_that_holds_secrets(tmp_path):
    _database_with_a_secret(tmp_path)
    kept = (tmp_path / "emrtasks.key").read_text()
    (tmp_path / "emrtasks.key").unlink()  # the key file lost, the database kept
    error = one_line_error(emrtasks(tmp_path, "serve", "--port", str(free_port())))
    assert f"there is no key file at {tmp_path / 'emrtasks.key'}" in error
    assert "restore the key file from the backup" in error and "EMRTASKS_ENCRYPTION_KEY" in error
    assert not (tmp_path / "emrtasks.key").exists()  # the new key it made is gone again
    (tmp_path / "emrtasks.key").write_text(kept)  # restored: every command works again
    assert emrtasks(tmp_path, "connections", "list").returncode == 0


def test_a_key_that_does_not_open_the_database_secrets_is_refused(tmp_path):
    _database_with_a_secret(tmp_path)
    (tmp_path / "other").mkdir()
    assert emrtasks(tmp_path / "other", "db", "upgrade").returncode == 0  # another deployment's key
    (tmp_path / "emrtasks.key").write_text((tmp_path / "other" / "emrtasks.key").read_text())
    for command in (("serve", "--port", str(free_port())), ("db", "upgrade"), ("connections", "list")):
        error = one_line_error(emrtasks(tmp_path, *command))
        assert "does not open the secrets this database holds" in error, command
        assert f"the key file {tmp_path / 'emrtasks.key'}" in error


def test_a_new_key_is_fine_for_a_database_that_holds_no_secret_yet(tmp_path):
    assert emrtasks(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "emrtasks.key").unlink()
    assert emrtasks(tmp_path, "db", "upgrade").returncode == 0
    assert (tmp_path / "emrtasks.key").exists()


def test_an_operator_command_refuses_a_database_without_emrtasks_tables(tmp_path):
    (tmp_path / "emrtasks.db").touch()
    (tmp_path / "emrtasks.key").write_text("made by hand\n")
    error = one_line_error(emrtasks(tmp_path, "clients", "list"))
    assert "has no emrtasks tables" in error and "`emrtasks db upgrade` makes one" in error
    assert (tmp_path / "emrtasks.db").stat().st_size == 0  # nothing was migrated into it


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("not a url", "EMRTASKS_DATABASE_URL is not a database URL"),
        ("postgresql://emr@127.0.0.1/emrtasks", "EMRTASKS_DATABASE_URL uses the driver 'postgresql'"),
        ("sqlite:///emrtasks.db", "EMRTASKS_DATABASE_URL uses the driver 'sqlite'"),
    ],
)
def test_a_bad_database_url_is_one_line_naming_the_setting(tmp_path, url, named):
    error = one_line_error(emrtasks(tmp_path, "db", "upgrade", env=clean_env(EMRTASKS_DATABASE_URL=url)))
    assert named in error


def test_an_invalid_setting_is_one_line_naming_it(tmp_path):
    error = one_line_error(emrtasks(tmp_path, "db", "upgrade", env=clean_env(EMRTASKS_DB_POOL_SIZE="many")))
    assert error.startswith("error: EMRTASKS_DB_POOL_SIZE is invalid:")


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path):
    url = f"postgresql+asyncpg://emr@127.0.0.1:{free_port()}/emrtasks"
    error = one_line_error(emrtasks(tmp_path, "serve", env=clean_env(EMRTASKS_DATABASE_URL=url)))
    assert "cannot be used" in error and "Connect call failed" in error
    assert "EMRTASKS_DATABASE_URL" in error


def test_a_sqlite_file_in_a_missing_directory_is_one_line_naming_the_setting(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'no-such-directory' / 'emrtasks.db'}"
    error = one_line_error(emrtasks(tmp_path, "db", "upgrade", env=clean_env(EMRTASKS_DATABASE_URL=url)))
    assert f"the directory {tmp_path / 'no-such-directory'} does not exist" in error
    assert "EMRTASKS_DATABASE_URL" in error


@pytest.mark.skipif(not POSTGRES_URL, reason="EMRTASKS_TEST_DATABASE_URL is not set")
def test_a_postgresql_database_that_does_not_exist_is_one_line_naming_the_setting(tmp_path):
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL).set(database="emrtasks_no_such_database")
    env = clean_env(EMRTASKS_DATABASE_URL=url.render_as_string(hide_password=False))
    error = one_line_error(emrtasks(tmp_path, "db", "upgrade", env=env))
    assert 'database "emrtasks_no_such_database" does not exist' in error


def test_serve_on_a_busy_port_fails_in_one_line_and_never_claims_to_serve(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = emrtasks(tmp_path, "serve", "--port", str(port))
    error = one_line_error(done)
    assert f"cannot serve on 127.0.0.1:{port}: the port is in use" in error and "--port" in error
    assert "serving" not in done.stderr
    assert not (tmp_path / "emrtasks.db").exists()  # it stopped before it migrated


def test_serve_says_it_serves_only_once_it_answers(tmp_path):
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "emrtasks", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "serving on" in line:
                    break
            else:
                raise AssertionError("serve ended without saying it serves")
            assert f"emrtasks serving on http://127.0.0.1:{port}" in line
            # No retry: the moment it says so, it answers.
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        finally:
            process.terminate()
            process.communicate(timeout=30)


def test_the_demos_curl_lines_work_when_pasted_into_a_shell_against_serve(tmp_path):
    port = free_port()
    shown = emrtasks(tmp_path, "demo", "--url", f"http://127.0.0.1:{port}")
    assert shown.returncode == 0, shown.stderr
    database = f"sqlite+aiosqlite:///./emrtasks.db (file {tmp_path / 'emrtasks.db'})"
    assert f"The demo writes a client, connections and tasks into the database {database}" in shown.stdout
    pasted = [line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("curl ")]
    assert len(pasted) == 5 and all(f"http://127.0.0.1:{port}/v1/" in line for line in pasted)
    assert not any("<" in line for line in pasted)  # no placeholder left to fill in
    with subprocess.Popen(
        [sys.executable, "-m", "emrtasks", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            assert any("serving on" in line for line in process.stderr)
            answers = [
                json.loads(
                    subprocess.run(
                        ["sh", "-c", line], capture_output=True, text=True, timeout=30, check=True
                    ).stdout
                )
                for line in pasted
            ]
        finally:
            process.terminate()
            process.communicate(timeout=30)
    assert all(answer["success"] for answer in answers), answers
    created, demo_task, demo_job, events, users = answers
    assert created["task_id"].startswith("task_")
    assert demo_task["task"]["status"] == "created"
    assert demo_job["job"]["task_id"] == demo_task["task"]["task_id"]
    assert events["webhook_events"][0]["type"] == "task.created"
    assert users["users"]


def test_alembic_says_nothing_below_debug(tmp_path):
    (tmp_path / "info").mkdir()
    (tmp_path / "debug").mkdir()
    quiet = emrtasks(tmp_path / "info", "db", "upgrade")
    assert quiet.returncode == 0, quiet.stderr
    assert "alembic." not in quiet.stderr and "setup plugin" not in quiet.stderr
    debugging = emrtasks(tmp_path / "debug", "db", "upgrade", env=clean_env(EMRTASKS_LOG_LEVEL="DEBUG"))
    assert "alembic.runtime.migration: Running upgrade" in debugging.stderr
