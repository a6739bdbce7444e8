"""`db upgrade`: apply the migrations."""

import argparse

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings


def register(commands: common.Subcommands) -> None:
    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_commands.add_parser(
        "upgrade",
        help="apply the migrations: makes the database (and key file) if missing, else brings it up to date",
    ).set_defaults(run=_upgrade, creates_database=True)


async def _upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False):
        print("database is at the newest schema")
    return 0
