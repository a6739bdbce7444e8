"""`emrtasks operators create | list | disable | enable`: the people who sign in to the operator console
at /console, and how `serve` and `demo` mount it."""

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from emrtasks import bootstrap
from emrtasks.config import Settings
from emrtasks.domain import errors
from emrtasks.service import audit, operators


def register(commands: Any) -> None:
    group = commands.add_parser("operators", help="people who sign in to the operator console (/console)")
    operator_commands = group.add_subparsers(dest="operators_command", required=True)
    create = operator_commands.add_parser(
        "create",
        help="an operator; the password is read from --password-file or asked for (never an argument)",
    )
    create.add_argument("--email", required=True, help="the operator's email, their sign-in name")
    create.add_argument(
        "--role",
        default=operators.VIEWER,
        choices=operators.ROLES,
        help="viewer: reads only; admin: also resends, retries and changes credentials",
    )
    create.add_argument(
        "--password-file", metavar="PATH", help="its first line is the password (else it is asked for)"
    )
    create.set_defaults(run=_create)
    operator_commands.add_parser("list", help="operators, their role and state").set_defaults(run=_list)
    for name, run, what in (
        ("disable", _disable, "refuse the operator's sign-in; their open sessions end now"),
        ("enable", _enable, "let a disabled operator sign in again"),
    ):
        command = operator_commands.add_parser(name, help=what)
        command.add_argument("--email", required=True, help="the operator's email")
        command.set_defaults(run=run)


def install_console(app: Any, settings: Settings) -> None:
    """Mount the console's pages on `serve`'s application."""
    from emrtasks.web import console as web_console

    web_console.install(app, bootstrap.form_key(settings), session_policy(settings))


def session_policy(settings: Settings) -> operators.SessionPolicy:
    return operators.SessionPolicy(
        idle_seconds=settings.console_session_idle_seconds, max_seconds=settings.console_session_max_seconds
    )


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    password = await _password(args.password_file)
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        created = await operators.create_operator(rt.ctx, args.email, password, args.role)
    print(json.dumps(created))
    return 0


async def _password(path: str | None) -> str:
    if path:
        try:
            text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        except OSError as exc:
            raise errors.Problem(
                400, "invalid_password_file", f"--password-file cannot be read: {exc.strerror}"
            ) from exc
        return text.splitlines()[0] if text else ""
    if not sys.stdin.isatty():
        raise errors.Problem(400, "no_password", "Give --password-file, or run in a terminal to be asked.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise errors.Problem(400, "password_mismatch", "The two passwords differ.")
    return first


async def _list(settings: Settings, _args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await operators.list_operators(rt.ctx)
    print(json.dumps(found, indent=2, default=_iso))
    return 0


def _iso(value: Any) -> str:
    return str(value.isoformat()).replace("+00:00", "Z")


async def _state(settings: Settings, args: argparse.Namespace, disabled: bool) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        changed = await operators.set_disabled(rt.ctx, audit.operator(), args.email, disabled)
    print(json.dumps(changed))
    return 0


async def _disable(settings: Settings, args: argparse.Namespace) -> int:
    return await _state(settings, args, True)


async def _enable(settings: Settings, args: argparse.Namespace) -> int:
    return await _state(settings, args, False)
