"""`apps`: the deployment's own app at each EMR vendor, for Link (set, list)."""

import argparse
import json

from emrtasks import bootstrap, emr
from emrtasks.cli import common
from emrtasks.config import Settings
from emrtasks.domain import errors


def register(commands: common.Subcommands) -> None:
    apps = commands.add_parser("apps", help="the deployment's own app at each EMR vendor (for Link)")
    app_commands = apps.add_subparsers(dest="apps_command", required=True)
    set_app = app_commands.add_parser(
        "set",
        help="set an EMR's app config (client id and secret, shared by every clinic); stored encrypted",
        epilog=_app_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    set_app.add_argument("--emr", required=True, choices=sorted(emr.MODULES), help=common.EMR_HELP)
    source = set_app.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-file", metavar="PATH", help="a JSON object")
    source.add_argument("--config", metavar="-", help="'-': read the JSON object from stdin")
    set_app.set_defaults(run=_set_app)
    app_commands.add_parser("list", help="the configured apps, without secrets").set_defaults(run=_list_apps)


def _app_settings_help() -> str:
    lines = ["app settings per EMR (held by the deployment, never entered by a clinic):"]
    for name, module in sorted(emr.MODULES.items()):
        held = [s for s in module.SETTINGS if s.held_by == "deployment"]
        oauth = getattr(module, "OAUTH", None)
        if not held and oauth is None:
            continue
        lines.append(f"  {name} ({module.TITLE}):")
        for setting in held:
            kind = "secret" if setting.secret else "plain"
            lines.append(f"    {setting.name:24} {kind}: {setting.description}")
        if oauth is not None and oauth.when_configured:
            lines.append(f"    {'oauth':24} plain: true to link by consent (OAuth) instead of credentials")
    lines.append("  any OAuth EMR: oauth_authorize_url, oauth_token_url (override the vendor's endpoints)")
    return "\n".join(lines)


async def _set_app(settings: Settings, args: argparse.Namespace) -> int:
    from emrtasks.service import link

    if args.config_file is None and args.config != "-":
        raise errors.Problem(
            400, "invalid_config", "--config takes '-' (stdin); use --config-file for a file."
        )
    config = await common.read_config(args)
    assert config is not None
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        await link.set_app(rt.ctx, args.emr, config)
    print(json.dumps({"emr": args.emr, "settings": sorted(config)}))
    return 0


async def _list_apps(settings: Settings, _args: argparse.Namespace) -> int:
    from emrtasks.service import link

    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await link.list_apps(rt.ctx)
    print(json.dumps(found, indent=2))
    return 0
