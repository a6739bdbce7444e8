"""`emrtasks operators`: create (password from a file, or asked for twice in a terminal), list without
hashes, disable and enable; each on the audit trail."""

import json

import pytest

from emrtasks import cli
from emrtasks.cli import operators as cli_operators


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("EMRTASKS_DATABASE_URL", "EMRTASKS_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMRTASKS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("EMRTASKS_KEY_FILE", str(tmp_path / "cli.key"))
    assert cli.main(["db", "upgrade"]) == 0  # operator commands never make a new database
    return tmp_path


def _run(capsys, *argv):
    assert cli.main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_an_operator_is_created_from_a_password_file_listed_disabled_and_enabled(workdir, capsys):
    secret = workdir / "password"
    secret.write_text("correct horse battery\n")
    created = _run(
        capsys,
        "operators",
        "create",
        "--email",
        "Ops@Example.com",
        "--role",
        "admin",
        "--password-file",
        str(secret),
    )
    assert created["email"] == "ops@example.com" and created["role"] == "admin"
    [listed] = _run(capsys, "operators", "list")
    assert (listed["operator_id"], listed["state"]) == (created["operator_id"], "active")
    assert "password" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    assert _run(capsys, "operators", "disable", "--email", "ops@example.com")["state"] == "disabled"
    assert _run(capsys, "operators", "enable", "--email", "ops@example.com")["state"] == "active"
    actions = [json.loads(line)["action"] for line in _lines(capsys, "audit", "list")]
    assert {"cli.operators.create", "operator.disable", "operator.enable"} <= set(actions)


def _lines(capsys, *argv):
    assert cli.main(list(argv)) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_a_second_operator_with_the_same_email_or_a_short_password_is_refused(workdir, capsys):
    secret = workdir / "password"
    secret.write_text("correct horse battery")
    _run(capsys, "operators", "create", "--email", "ops@example.com", "--password-file", str(secret))
    assert (
        cli.main(["operators", "create", "--email", "OPS@example.com", "--password-file", str(secret)]) == 2
    )
    assert "exists" in capsys.readouterr().err
    secret.write_text("short")
    assert cli.main(["operators", "create", "--email", "b@example.com", "--password-file", str(secret)]) == 2
    assert "too short" in capsys.readouterr().err


def test_without_a_file_the_password_is_asked_for_twice_and_must_match(workdir, capsys, monkeypatch):
    answers = iter(["correct horse battery", "correct horse batterx"])
    monkeypatch.setattr(cli_operators.getpass, "getpass", lambda prompt: next(answers))
    monkeypatch.setattr(cli_operators.sys.stdin, "isatty", lambda: True)
    assert cli.main(["operators", "create", "--email", "ops@example.com"]) == 2
    assert "differ" in capsys.readouterr().err


def test_disabling_an_unknown_operator_says_so(workdir, capsys):
    assert cli.main(["operators", "disable", "--email", "nobody@example.com"]) == 2
    assert "Operator not found" in capsys.readouterr().err
