"""`demo`: a client, connections and tasks in the sandbox EMR, and what happened to them."""

import argparse

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings


def register(commands: common.Subcommands) -> None:
    demo_command = commands.add_parser("demo", help="create a client and tasks, show what happens")
    demo_command.set_defaults(run=_demo, creates_database=True)


async def _demo(settings: Settings, _args: argparse.Namespace) -> int:
    from emrtasks import demo
    from emrtasks.api.app import create_app
    from emrtasks.web import link as web_link

    async with bootstrap.runtime(settings, run_worker=True) as rt:
        app = create_app(rt.ctx, max_body_bytes=settings.max_body_bytes)
        web_link.install(app, bootstrap.form_key(settings))
        return await demo.run(rt.ctx, app)
