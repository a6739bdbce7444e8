"""`connections`: create, update, sync, list, rotate-token, disable, enable, delete."""

import argparse
import json

from emrtasks import bootstrap, emr
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.service import admin, audit, credentials


def register(commands: common.Subcommands) -> None:
    connections = commands.add_parser("connections", help="EMR connections of a client")
    connection_commands = connections.add_subparsers(dest="connections_command", required=True)
    _add_create(connection_commands)
    update_connection = connection_commands.add_parser(
        "update",
        help="change settings or credentials (merged over the old); makes the connection active again",
    )
    update_connection.add_argument("--connection-id", required=True, help=common.CONNECTION_ID_HELP)
    common.add_config_source(update_connection, "settings to change, as a JSON object")
    update_connection.add_argument("--reference-id", help="a new access_token_reference_id")
    update_connection.set_defaults(run=_update_connection)
    sync_connection = connection_commands.add_parser(
        "sync", help="fetch the EMR's users and phone call types now"
    )
    sync_connection.add_argument("--connection-id", required=True, help=common.CONNECTION_ID_HELP)
    sync_connection.set_defaults(run=_sync_connection)
    list_connections = connection_commands.add_parser("list", help="connections, without secrets")
    list_connections.add_argument("--client-id", help="only this client app's (default: every client's)")
    list_connections.set_defaults(run=_list_connections)
    _add_lifecycle(connection_commands)


def _add_create(connection_commands: common.Subcommands) -> None:
    create_connection = connection_commands.add_parser(
        "create",
        help="create a connection; prints its access token, shown once",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create_connection.add_argument("--client-id", required=True, help=common.CLIENT_ID_HELP)
    create_connection.add_argument(
        "--emr", default="sandbox", choices=sorted(emr.MODULES), help=common.EMR_HELP
    )
    create_connection.add_argument(
        "--rules",
        help="sandbox: subject_assignee, phone_call, or any EMR's name to take on its rules; other EMRs "
        "have their own (default: the EMR's own, subject_assignee for the sandbox)",
    )
    create_connection.add_argument("--reference-id", help="echoed as access_token_reference_id")
    common.add_config_source(create_connection, "the EMR's settings as a JSON object (below)")
    create_connection.set_defaults(run=_create_connection)


def _add_lifecycle(connection_commands: common.Subcommands) -> None:
    rotate_token = connection_commands.add_parser(
        "rotate-token", help="a new access token, printed once; the old one works until the overlap ends"
    )
    rotate_token.add_argument("--connection-id", required=True, help=common.CONNECTION_ID_HELP)
    rotate_token.add_argument(
        "--overlap-seconds", type=float, default=0.0, help="default 0: the old one stops now"
    )
    rotate_token.set_defaults(run=_rotate_connection_token)
    for name, run, what in (
        ("disable", _disable_connection, "refuse the access token (every process, within a second)"),
        ("enable", _enable_connection, "accept a disabled connection's access token again"),
        ("delete", _delete_connection, "delete the connection; its queued jobs and deliveries end"),
    ):
        command = connection_commands.add_parser(name, help=what)
        command.add_argument("--connection-id", required=True, help=common.CONNECTION_ID_HELP)
        command.set_defaults(run=run)


def _settings_help() -> str:
    lines = ["settings (--config) per EMR:"]
    for name, module in sorted(emr.MODULES.items()):
        lines.append(f"  {name} ({module.TITLE}):")
        for setting in module.SETTINGS:
            need = "required" if setting.required and setting.default is None else "optional"
            secret = ", secret" if setting.secret else ""
            held = {"deployment": ", app (Link: emrtasks apps set)", "oauth": ", from OAuth (Link)"}
            origin = held.get(setting.held_by, "")
            lines.append(f"    {setting.name:24} {need}{secret}{origin}: {setting.description}")
    lines.append("  any EMR: max_concurrency (writes at once), rate_per_second (calls per second)")
    return "\n".join(lines)


async def _create_connection(settings: Settings, args: argparse.Namespace) -> int:
    config = await common.read_config(args) or {}
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        created = await admin.create_connection(
            rt.ctx,
            client_id=args.client_id,
            emr=args.emr,
            rules=args.rules,
            reference_id=args.reference_id,
            settings=config,
        )
    print(json.dumps({"connection_id": created.connection_id, "access_token": created.access_token}))
    return 0


async def _update_connection(settings: Settings, args: argparse.Namespace) -> int:
    config = await common.read_config(args)
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        updated = await admin.update_connection(
            rt.ctx, args.connection_id, settings=config, reference_id=args.reference_id
        )
    print(json.dumps({"connection_id": updated.id, "status": updated.status}))
    return 0


async def _sync_connection(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        counts = await admin.sync_directory(rt.ctx, args.connection_id)
    print(json.dumps({"connection_id": args.connection_id, **counts}))
    return 0


async def _list_connections(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await admin.list_connections(rt.ctx, args.client_id)
    print(json.dumps(found, indent=2))
    return 0


async def _rotate_connection_token(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        rotated = await credentials.rotate_connection_token(
            rt.ctx, audit.operator(), args.connection_id, args.overlap_seconds
        )
    print(
        json.dumps(
            {
                "connection_id": rotated.id,
                "access_token": rotated.secret,
                "previous_token_expires_at": common.iso(rotated.previous_expires_at),
            }
        )
    )
    return 0


async def _connection_state(settings: Settings, args: argparse.Namespace, disabled: bool) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        state = await credentials.set_connection_disabled(
            rt.ctx, audit.operator(), args.connection_id, disabled
        )
    print(json.dumps({"connection_id": args.connection_id, "state": state}))
    return 0


async def _disable_connection(settings: Settings, args: argparse.Namespace) -> int:
    return await _connection_state(settings, args, True)


async def _enable_connection(settings: Settings, args: argparse.Namespace) -> int:
    return await _connection_state(settings, args, False)


async def _delete_connection(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        deleted = await credentials.delete_connection(rt.ctx, audit.operator(), args.connection_id)
    print(json.dumps(deleted))
    return 0
