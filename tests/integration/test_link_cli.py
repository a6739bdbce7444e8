"""The command line for Link: a client's allowed origins, the deployment's apps (from a file or stdin,
listed without secrets), and `emrtasks demo` linking a sandbox clinic end to end."""

import io
import json

import pytest

from emrtasks import cli


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("EMRTASKS_DATABASE_URL", "EMRTASKS_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMRTASKS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("EMRTASKS_KEY_FILE", str(tmp_path / "cli.key"))
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
