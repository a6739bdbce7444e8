"""`keys`: the deployment's signing keys (SMART Backend Services): create, list, retire."""

import argparse
import json
import sys

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.service import keys


def register(commands: common.Subcommands) -> None:
    signing_keys = commands.add_parser(
        "keys", help="the deployment's signing keys (SMART Backend Services, /.well-known/jwks.json)"
    )
    key_commands = signing_keys.add_subparsers(dest="keys_command", required=True)
    create_key = key_commands.add_parser(
        "create", help="a new key: published at once, signs once EMRTASKS_SIGNING_KEY_PUBLISH_SECONDS passed"
    )
    create_key.add_argument(
        "--alg",
        default="RS384",
        choices=["RS384", "ES384"],
        help="the signing algorithm (RSA or P-384 ECDSA)",
    )
    create_key.set_defaults(run=_create_key)
    key_commands.add_parser("list", help="every key, without private material").set_defaults(run=_list_keys)
    retire_key = key_commands.add_parser("retire", help="take a key out of the JWKS; it signs no more")
    retire_key.add_argument("kid", help="the key's id, as `keys list` shows it")
    retire_key.set_defaults(run=_retire_key)


async def _create_key(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        created = await keys.create_key(rt.engine, rt.ctx.cipher, args.alg, rt.ctx.clock())
    print(json.dumps(created))
    return 0


async def _list_keys(settings: Settings, _args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await keys.list_keys(rt.engine, rt.ctx.clock(), settings.signing_key_publish_seconds)
    print(json.dumps(found, indent=2))
    return 0


async def _retire_key(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        retired = await keys.retire_key(rt.engine, args.kid, rt.ctx.clock())
    print(json.dumps(retired))
    if not retired["active_keys_left"]:
        print(
            "warning: no active signing key is left: smart_backend connections cannot sign", file=sys.stderr
        )
    return 0
