"""`demo`: a client, connections and tasks in the sandbox EMR, and what happened to them."""

import argparse

from emrtasks import bootstrap
from emrtasks.cli import common, operators
from emrtasks.cli import database as cli_database
from emrtasks.config import Settings


def register(commands: common.Subcommands) -> None:
    demo_command = commands.add_parser(
        "demo",
        help="a guided tour over real HTTP: writes a demo client, connections and tasks into the database, "
        "shows what happens, and prints curl lines to repeat it against `emrtasks serve`",
    )
    demo_command.add_argument(
        "--url",
        help="where `emrtasks serve` answers, for the curl lines (default: EMRTASKS_PUBLIC_URL, "
        "http://127.0.0.1:8000 unless set)",
    )
    demo_command.set_defaults(run=_demo, creates_database=True)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from emrtasks import demo
    from emrtasks.api.app import create_app
    from emrtasks.web import link as web_link

    async with bootstrap.runtime(settings, run_worker=True) as rt:
        app = create_app(rt.ctx, max_body_bytes=settings.max_body_bytes)
        web_link.install(app, bootstrap.form_key(settings))
        operators.install_console(app, settings)
        database = cli_database.target_of(settings).database()
        return await demo.run(rt.ctx, app, database=database, serve_url=args.url or settings.public_url)
