"""Every operator command leaves a row in the audit trail once it ends, with how it ended
(docs/security.md); commands that run the service leave none."""

import argparse
import sys

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.domain import errors
from emrtasks.service import audit

# Commands that write their own audit row inside the transaction of their change, and commands that
# are not operator actions on data (they run the service).
_SELF_AUDITED = frozenset({"rotate-secret", "rotate-token", "disable", "enable", "delete"})
_NOT_AUDITED = frozenset({"serve", "worker", "demo"})


def wrap_operator_commands(parser: argparse.ArgumentParser) -> None:
    """Wrap the `run` of every operator command, however deep, in `_audited`."""
    for path, command in common.leaves(parser):
        run = command.get_default("run")
        if path in _NOT_AUDITED or run is None:
            continue
        failures_only = path.rpartition(" ")[2] in _SELF_AUDITED
        action = "cli." + path.replace(" ", ".").replace("-", "_")
        command.set_defaults(run=_audited(action, run, failures_only))


def _audited(action: str, run: common.Run, failures_only: bool = False) -> common.Run:
    """`failures_only`: the command records its success itself, inside its transaction."""

    async def audited(settings: Settings, args: argparse.Namespace) -> int:
        outcome: str | None = audit.FAILED
        try:
            result = await run(settings, args)
            outcome = audit.SUCCESS if result == 0 else audit.FAILED
            return result
        except errors.Problem as problem:
            outcome = audit.NOT_FOUND if problem.status == 404 else audit.FAILED
            raise
        except bootstrap.WrongKey:  # the command never ran, and no runtime with this key would start
            outcome = None
            raise
        finally:
            if outcome is not None and (outcome != audit.SUCCESS or not failures_only):
                await _record_operator_action(settings, action, args, outcome)

    return audited


async def _record_operator_action(
    settings: Settings, action: str, args: argparse.Namespace, outcome: str
) -> None:
    from emrtasks.storage import db

    names = ("client_id", "connection_id", "kid", "emr")
    targets = {name: str(getattr(args, name)) for name in names if getattr(args, name, None) is not None}
    try:
        async with bootstrap.runtime(settings, run_worker=False) as rt, db.write(rt.engine) as conn:
            await audit.record_in(
                conn,
                audit.operator(),
                action,
                rt.ctx.clock(),
                targets=targets,
                outcome=outcome,
                client_id=targets.get("client_id"),
                connection_id=targets.get("connection_id"),
            )
    except Exception as exc:  # the command's own error matters more; say the row is missing
        print(
            f"warning: the audit row for {action} could not be written: {type(exc).__name__}", file=sys.stderr
        )
