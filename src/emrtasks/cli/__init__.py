"""The command line: serve, worker, db upgrade, clients (create, update, list, rotate-secret, disable,
enable, delete), connections (create, update, sync, list, rotate-token, disable, enable, delete), keys
(create, list, retire), apps (set, list: the deployment's app at each EMR vendor, for Link), audit
(list), demo. Every operator command leaves a row in the audit trail (docs/security.md)."""

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

from emrtasks import bootstrap
from emrtasks.cli import audited
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
    "demo",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    bootstrap.configure_logging(settings)
    try:
        result: int = asyncio.run(args.run(settings, args))
    except errors.Problem as problem:
        print(f"error: {problem.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def parser() -> argparse.ArgumentParser:
    """Every group's commands; every operator command audited."""
    root = argparse.ArgumentParser(prog="emrtasks", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    audited.wrap_operator_commands(root)
    return root
