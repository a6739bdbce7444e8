"""`serve` (the API, and a worker unless `--no-worker`) and `worker` (a worker on its own)."""

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

from emrtasks import bootstrap
from emrtasks.cli import common, operators
from emrtasks.config import Settings
from emrtasks.domain import errors

log = logging.getLogger("emrtasks")


def register(commands: common.Subcommands) -> None:
    serve = commands.add_parser(
        "serve", help="the API, the Link pages and a worker in one process (migrates first)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the TCP port to listen on (0: any free one)")
    serve.add_argument("--no-worker", action="store_true", help="API only; run `emrtasks worker`")
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with other serve processes started so (SO_REUSEPORT; EMRTASKS_REUSE_PORT)",
    )
    serve.set_defaults(run=_serve, creates_database=True)

    worker = commands.add_parser(
        "worker", help="a worker on its own: runs queued jobs until SIGINT or SIGTERM (migrates first)"
    )
    worker.set_defaults(run=_worker, creates_database=True)


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Bound before anything starts: a busy port ends this process at once, before it migrates,
    # starts a worker or claims to serve.
    listener = bind(args.host, args.port, reuse_port=args.reuse_port or settings.reuse_port)
    with listener:
        async with (
            bootstrap.runtime(settings, run_worker=not args.no_worker, observe=True) as rt,
            bootstrap.credential_changes(settings, rt.ctx),
        ):
            database = rt.engine.url.render_as_string(hide_password=True)
            server = _server(settings, rt, f"emrtasks serving on {_address(listener)} (database: {database})")
            common.on_signals(lambda: setattr(server, "should_exit", True))
            await server.serve(sockets=[listener])
    return 0


def _server(settings: Settings, rt: bootstrap.Runtime, announcement: str) -> Any:
    """A uvicorn server of the API and the Link pages that logs `announcement` once it listens."""
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

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                log.info("%s", announcement)

    app = create_app(
        rt.ctx,
        max_body_bytes=settings.max_body_bytes,
        bench_routes=settings.bench_routes,
        telemetry=rt.telemetry,
    )
    web_link.install(app, bootstrap.form_key(settings))
    operators.install_console(app, settings)
    logging.getLogger("uvicorn.access").addFilter(StripQuery())
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=settings.access_log,
        log_config=None,
        server_header=False,
        http=edge.protocol_class(edge_limits(settings)),
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    return _Server(config)


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port; `Problem` with one line saying why when it cannot be.

    With `reuse_port`, every process that binds the port so shares it, and the kernel spreads new
    connections across them (SO_REUSEPORT)."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise errors.Problem(400, "cannot_serve", f"cannot serve on {host}:{port}: {exc.strerror}") from None
    # As uvicorn does: a restart may bind while the last run's connections are in TIME_WAIT (a
    # port another process listens on is still refused).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        _share_port(sock, f"{host}:{port}")
    try:
        sock.bind(where)
    except OSError as exc:
        sock.close()
        reason = _busy(reuse_port) if exc.errno == errno.EADDRINUSE else exc.strerror
        raise errors.Problem(400, "cannot_serve", f"cannot serve on {host}:{port}: {reason}") from None
    return sock


def _share_port(sock: socket.socket, where: str) -> None:
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        sock.close()
        why = "this system has no SO_REUSEPORT; put a TCP balancer in front instead (docs/deploy.md)"
        raise errors.Problem(400, "cannot_serve", f"cannot serve on {where}: {why}")
    sock.setsockopt(socket.SOL_SOCKET, option, 1)


def _busy(reuse_port: bool) -> str:
    if reuse_port:
        return "the port is in use by a process that does not share it (every serve on it needs --reuse-port)"
    return "the port is in use (is another emrtasks serve running?); stop it or choose another --port"


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
    async with bootstrap.runtime(settings, run_worker=True, observe=True):
        await stop.wait()
    return 0
