"""`serve` (the API, and a worker unless `--no-worker`) and `worker` (a worker on its own)."""

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from emrtasks import bootstrap
from emrtasks.cli import common
from emrtasks.config import Settings

log = logging.getLogger("emrtasks")


def register(commands: common.Subcommands) -> None:
    serve = commands.add_parser("serve", help="API and worker in one process (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `emrtasks worker`")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="a worker on its own")
    worker.set_defaults(run=_worker)


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # The web stack is loaded only to serve, so the other commands start quickly.
    import uvicorn

    from emrtasks.api import edge
    from emrtasks.api.app import StripQuery, create_app
    from emrtasks.web import link as web_link

    class _Server(uvicorn.Server):
        """uvicorn, minus its habit of re-raising SIGTERM after serving: we drain the worker first."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async with (
        bootstrap.runtime(settings, run_worker=not args.no_worker) as rt,
        bootstrap.credential_changes(settings, rt.ctx),
    ):
        app = create_app(rt.ctx, max_body_bytes=settings.max_body_bytes, bench_routes=settings.bench_routes)
        web_link.install(app, bootstrap.form_key(settings))
        logging.getLogger("uvicorn.access").addFilter(StripQuery())
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            lifespan="off",
            access_log=settings.access_log,
            log_config=None,
            server_header=False,
            http=edge.protocol_class(edge_limits(settings)),
            timeout_keep_alive=settings.keep_alive_seconds,
        )
        server = _Server(config)
        common.on_signals(lambda: setattr(server, "should_exit", True))
        log.info(
            "emrtasks serving on http://%s:%d (database: %s)",
            args.host,
            args.port,
            rt.engine.url.render_as_string(hide_password=True),
        )
        await server.serve()
    return 0


def edge_limits(settings: Settings) -> Any:
    """The HTTP edge's limits from the settings (an `api.edge.EdgeLimits`)."""
    from emrtasks.api import edge

    return edge.EdgeLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        max_connections=settings.max_connections,
    )


async def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    common.on_signals(stop.set)
    async with bootstrap.runtime(settings, run_worker=True):
        await stop.wait()
    return 0
