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
