"""What the command groups share: the type of a command's `run`, JSON from `--config`, times as text,
and signal handling for the long-running commands."""

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from emrtasks.config import Settings
from emrtasks.domain import errors

CLIENT_ID_HELP = "the client app's id (ci_...)"
CONNECTION_ID_HELP = "the connection's id (conn_...)"
EMR_HELP = "the kind of EMR"

# A command's body: it gets the settings and its parsed arguments, and returns the exit status.
Run = Callable[[Settings, argparse.Namespace], Awaitable[int]]
# What `ArgumentParser.add_subparsers()` returns (argparse's class is private).
Subcommands = Any


def add_config_source(command: argparse.ArgumentParser, what: str) -> None:
    """`--config JSON`, `--config -` (stdin) or `--config-file PATH`: secrets given inline are seen
    by `ps` and kept in shell history; stdin and a file are not."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="JSON|-", help=f"{what}; '-' reads it from stdin")
    source.add_argument("--config-file", metavar="PATH", help=f"{what}, in a file")


async def read_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The JSON object from `--config-file`, `--config -` (stdin) or `--config JSON`; None if none given."""
    if args.config_file:
        try:
            text = await asyncio.to_thread(Path(args.config_file).read_text, encoding="utf-8")
        except OSError as exc:
            raise errors.Problem(
                400, "invalid_config", f"--config-file cannot be read: {exc.strerror}"
            ) from exc
        return json_object(text)
    if args.config == "-":
        return json_object(await asyncio.to_thread(sys.stdin.read))
    if args.config is not None:
        return json_object(args.config)
    return None


def json_object(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.Problem(400, "invalid_config", f"--config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.Problem(400, "invalid_config", "--config must be a JSON object.")
    return config


def iso(value: Any) -> str | None:
    from emrtasks.webhooks import events

    return events.iso(value) if value is not None else None


def on_signals(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


def leaves(root: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something, with its path (`clients rotate-secret`)."""
    yield from _leaves(root, "")


def _leaves(command: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield path, command
        return
    for name, sub in nested[0].choices.items():
        yield from _leaves(sub, f"{path} {name}".strip())


class HelpFormatter(argparse.HelpFormatter):
    """Text of several lines kept as written (the per-EMR settings tables), one line wrapped; each
    option's default after its help, unless the help already speaks of it or there is none to show."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: {default})"


def finish_help(root: argparse.ArgumentParser) -> None:
    """Every command, however deep, formats with `HelpFormatter` and describes itself on its own
    `--help` page with the line its parent lists it by."""
    root.formatter_class = HelpFormatter
    for action in root._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        listed = {choice.dest: choice.help for choice in action._choices_actions}
        for name, command in action.choices.items():
            command.description = command.description or listed.get(name)
            finish_help(command)
