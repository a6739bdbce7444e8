"""`audit list`: the audit trail as JSON lines (HIPAA 164.312(b))."""

import argparse
import datetime as dt
import json

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.domain import errors
from emrtasks.service import audit


def register(commands: common.Subcommands) -> None:
    trail = commands.add_parser("audit", help="the audit trail (HIPAA 164.312(b))")
    trail_commands = trail.add_subparsers(dest="audit_command", required=True)
    listing = trail_commands.add_parser("list", help="audit rows as JSON lines, oldest first")
    listing.add_argument(
        "--since", help="only rows at or after this ISO 8601 time, e.g. 2026-12-03T00:00:00Z (UTC if no zone)"
    )
    listing.add_argument("--client-id", help="only rows about this client app (ci_...)")
    listing.add_argument(
        "--action", help="only rows of this action, e.g. task.accept, task.read, client.disable"
    )
    listing.add_argument("--limit", type=int, default=10_000, help="at most this many rows")
    listing.set_defaults(run=_list_audit)


async def _list_audit(settings: Settings, args: argparse.Namespace) -> int:
    since = _since(args.since)
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await audit.list_rows(
            rt.ctx, since=since, client_id=args.client_id, action=args.action, limit=args.limit
        )
    for row in found:
        print(json.dumps({**row.values(), "at": common.iso(row.at)}, sort_keys=True))
    return 0


def _since(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        since = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise errors.Problem(400, "invalid_since", "--since must be an ISO 8601 time.") from exc
    return since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since
