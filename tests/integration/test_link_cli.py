"""The command line for Link: a client's allowed origins, the deployment's apps (from a file or stdin,
listed without secrets), and `emrtasks demo` linking a sandbox clinic end to end."""

import io
import json

import pytest

from emrtasks import cli


@pytest.fixture
def workdir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("EMRTASKS_DATABASE_URL", "EMRTASKS_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMRTASKS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("EMRTASKS_KEY_FILE", str(tmp_path / "cli.key"))
    assert cli.main(["db", "upgrade"]) == 0  # operator commands never create the database
    capsys.readouterr()
    return tmp_path


def _run(capsys, *argv):
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_allowed_origins_are_set_replaced_and_cleared(workdir, capsys):
    client = _run(capsys, "clients", "create", "--name", "app")
    found = _run(
        capsys,
        "clients",
        "update",
        "--client-id",
        client["client_id"],
        "--allowed-origin",
        "https://app.example.com",
        "--allowed-origin",
        "http://127.0.0.1:5000",
    )
    assert found["allowed_origins"] == ["http://127.0.0.1:5000", "https://app.example.com"]
    found = _run(capsys, "clients", "update", "--client-id", client["client_id"], "--clear-allowed-origins")
    assert found["allowed_origins"] == []
    assert (
        cli.main(
            ["clients", "update", "--client-id", client["client_id"], "--allowed-origin", "http://x.com"]
        )
        == 2
    )
    assert "must be https" in capsys.readouterr().err


def test_apps_are_set_from_a_file_or_stdin_and_listed_without_secrets(workdir, capsys, monkeypatch):
    path = workdir / "drchrono.json"
    path.write_text(json.dumps({"client_id": "app-id", "client_secret": "very-s3cret"}))
    assert _run(capsys, "apps", "set", "--emr", "drchrono", "--config-file", str(path))["emr"] == "drchrono"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"client_id": "eh", "private_key": "PEM..."})))
    _run(capsys, "apps", "set", "--emr", "eclinicalworks", "--config", "-")
    assert cli.main(["apps", "list"]) == 0
    out = capsys.readouterr().out
    assert "very-s3cret" not in out and "PEM..." not in out
    listed = {a["emr"]: a["config"] for a in json.loads(out)}
    assert listed == {
        "drchrono": {"client_id": "app-id", "client_secret": "(set)"},
        "eclinicalworks": {"client_id": "eh", "private_key": "(set)"},
    }
    assert cli.main(["apps", "set", "--emr", "drchrono", "--config-file", str(workdir / "none.json")]) == 2
    assert cli.main(["apps", "set", "--emr", "drchrono", "--config", "{}"]) == 2


def test_the_demo_links_a_sandbox_clinic_end_to_end(workdir, capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "POST /v1/link/token/create" in out
    assert "http://127.0.0.1:8000/link?token=lt_" in out
    assert '"token": "at_' in out
    assert "This public token was already exchanged: a public token works once." in out
    assert out.count("status created") >= 2


def test_connection_secrets_are_taken_from_a_file_or_stdin_never_only_the_command_line(
    workdir, capsys, monkeypatch
):
    import asyncio

    from emrtasks import bootstrap
    from emrtasks.config import Settings
    from emrtasks.storage import connections, db

    client = _run(capsys, "clients", "create", "--name", "app")
    path = workdir / "healthie.json"
    config = {
        "base_url": "https://staging-api.gethealthie.com",
        "api_key": "from-a-file",
        "api_version": "2026-01-01",
        "mrn_field": "record_identifier",
    }
    path.write_text(json.dumps(config))
    flags = ["--client-id", client["client_id"], "--emr", "healthie", "--config-file", str(path)]
    created = _run(capsys, "connections", "create", *flags)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"api_key": "from-stdin"})))
    _run(capsys, "connections", "update", "--connection-id", created["connection_id"], "--config", "-")

    async def stored_key() -> str:
        async with bootstrap.runtime(Settings(), run_worker=False) as rt:
            async with db.read(rt.engine) as conn:
                found = await connections.get_connection(conn, created["connection_id"])
            assert found is not None
            return str(rt.ctx.adapters.config_of(found)["api_key"])

    assert asyncio.run(stored_key()) == "from-stdin"
    missing = ["connections", "create", "--client-id", client["client_id"], "--config-file", "none.json"]
    assert cli.main(missing) == 2
    assert "cannot be read" in capsys.readouterr().err
