"""`clients`: create, update (allowed origins), list, rotate-secret, disable, enable, delete."""

import argparse
import json

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.service import admin, audit, credentials


def register(commands: common.Subcommands) -> None:
    clients = commands.add_parser("clients", help="client apps")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    create_client = client_commands.add_parser(
        "create", help="create a client; prints its id and its secret, shown once"
    )
    create_client.add_argument("--name", required=True, help="the app's name, for lists and the audit trail")
    create_client.set_defaults(run=_create_client)
    _add_update(client_commands)
    client_commands.add_parser("list", help="clients and their state, without secrets").set_defaults(
        run=_list_clients
    )
    rotate = client_commands.add_parser(
        "rotate-secret", help="a new secret, printed once; the old one works until the overlap ends"
    )
    rotate.add_argument("--client-id", required=True, help=common.CLIENT_ID_HELP)
    rotate.add_argument("--overlap-seconds", type=float, default=0.0, help="default 0: the old one stops now")
    rotate.set_defaults(run=_rotate_client_secret)
    for name, run, what in (
        ("disable", _disable_client, "refuse the client's credentials (every process, within a second)"),
        ("enable", _enable_client, "accept a disabled client's credentials again"),
        ("delete", _delete_client, "delete the client, its connections and webhooks; pending work ends"),
    ):
        command = client_commands.add_parser(name, help=what)
        command.add_argument("--client-id", required=True, help=common.CLIENT_ID_HELP)
        command.set_defaults(run=run)


def _add_update(client_commands: common.Subcommands) -> None:
    update_client = client_commands.add_parser(
        "update", help="where the client's pages may embed Link and receive its messages"
    )
    update_client.add_argument("--client-id", required=True, help=common.CLIENT_ID_HELP)
    origins = update_client.add_mutually_exclusive_group(required=True)
    origins.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="https://app.example.com (http:// on loopback only); repeat for several; replaces the old list",
    )
    origins.add_argument("--clear-allowed-origins", action="store_true", help="allow no origin")
    update_client.set_defaults(run=_update_client)


async def _create_client(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        created = await admin.create_client(rt.ctx, args.name)
    print(json.dumps({"client_id": created.client_id, "client_secret": created.client_secret}))
    return 0


async def _update_client(settings: Settings, args: argparse.Namespace) -> int:
    from emrtasks.service import link

    wanted = [] if args.clear_allowed_origins else list(args.allowed_origin or [])
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await link.set_allowed_origins(rt.ctx, args.client_id, wanted)
    print(json.dumps({"client_id": args.client_id, "allowed_origins": list(found)}))
    return 0


async def _list_clients(settings: Settings, _args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await credentials.list_clients(rt.ctx)
    print(json.dumps(found, indent=2))
    return 0


async def _rotate_client_secret(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        rotated = await credentials.rotate_client_secret(
            rt.ctx, audit.operator(), args.client_id, args.overlap_seconds
        )
    print(
        json.dumps(
            {
                "client_id": rotated.id,
                "client_secret": rotated.secret,
                "previous_secret_expires_at": common.iso(rotated.previous_expires_at),
            }
        )
    )
    return 0


async def _client_state(settings: Settings, args: argparse.Namespace, disabled: bool) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        state = await credentials.set_client_disabled(rt.ctx, audit.operator(), args.client_id, disabled)
    print(json.dumps({"client_id": args.client_id, "state": state}))
    return 0


async def _disable_client(settings: Settings, args: argparse.Namespace) -> int:
    return await _client_state(settings, args, True)


async def _enable_client(settings: Settings, args: argparse.Namespace) -> int:
    return await _client_state(settings, args, False)


async def _delete_client(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        deleted = await credentials.delete_client(rt.ctx, audit.operator(), args.client_id)
    print(json.dumps(deleted))
    return 0
