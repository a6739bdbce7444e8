"""The command line: serve, worker, db upgrade, clients (create, update, list, rotate-secret, disable,
enable, delete), connections (create, update, sync, list, rotate-token, disable, enable, delete), keys
(create, list, retire), apps (set, list: the deployment's app at each EMR vendor, for Link), audit
(list), operators (create, list, disable, enable: who signs in to the console), demo. Every operator
command leaves a row in the audit trail (docs/security.md)."""

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

import pydantic

from emrtasks import bootstrap
from emrtasks.cli import audited, common, database
from emrtasks.config import Settings
from emrtasks.domain import errors

# The command groups, in the order `--help` lists them: each is a module of this package with a
# `register(commands)` that adds its commands. A new group is one more line here.
GROUPS = (
    "serve",
    "db",
    "clients",
    "apps",
    "connections",
    "keys",
    "audit",
    "operators",
    "demo",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except pydantic.ValidationError as invalid:
        print(f"error: {_first_invalid_setting(invalid)}", file=sys.stderr)
        return 2
    bootstrap.configure_logging(settings)
    try:
        result: int = asyncio.run(_run(settings, args))
    except (errors.Problem, database.Unusable, bootstrap.WrongKey) as problem:
        print(f"error: {getattr(problem, 'message', problem)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Name the database and key file, refuse to start a new deployment by accident, check the
    database answers, then run the command."""
    target = database.target_of(settings)
    database.announce(target, as_log=settings.log_format == "json")
    await database.check(target, f"emrtasks {args.path}", creates=args.creates_database)
    result: int = await args.run(settings, args)
    return result


def _first_invalid_setting(invalid: pydantic.ValidationError) -> str:
    first = invalid.errors()[0]
    name = "EMRTASKS_" + "_".join(str(part) for part in first["loc"]).upper()
    return f"{name} is invalid: {first['msg']}"


def parser() -> argparse.ArgumentParser:
    """Every group's commands; every operator command audited."""
    root = argparse.ArgumentParser(prog="emrtasks", description=__doc__)
    root.set_defaults(creates_database=False)  # serve, worker, db upgrade and demo set it
    commands = root.add_subparsers(dest="command", required=True)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    for path, command in common.leaves(root):
        command.set_defaults(path=path)
    common.finish_help(root)
    audited.wrap_operator_commands(root)
    return root
