"""The command line: serve, worker, db upgrade, clients (create, update), connections (create, update, sync,
list), keys (create, list, retire), apps (set, list: the deployment's app at each EMR vendor, for Link),
demo."""

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from emrtasks import bootstrap, emr
from emrtasks.config import Settings
from emrtasks.domain import errors
from emrtasks.service import admin, keys

log = logging.getLogger("emrtasks")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    bootstrap.configure_logging(settings)
    try:
        result: int = asyncio.run(args.run(settings, args))
    except errors.Problem as problem:
        print(f"error: {problem.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emrtasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="API and worker in one process (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `emrtasks worker`")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="a worker on its own")
    worker.set_defaults(run=_worker)

    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_commands.add_parser("upgrade", help="apply migrations").set_defaults(run=_upgrade)

    clients = commands.add_parser("clients", help="client apps")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    create_client = client_commands.add_parser(
        "create", help="create a client; prints its id and its secret, shown once"
    )
    create_client.add_argument("--name", required=True)
    create_client.set_defaults(run=_create_client)
    update_client = client_commands.add_parser(
        "update", help="where the client's pages may embed Link and receive its messages"
    )
    update_client.add_argument("--client-id", required=True)
    origins = update_client.add_mutually_exclusive_group(required=True)
    origins.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="https://app.example.com (http:// on loopback only); repeat for several; replaces the old list",
    )
    origins.add_argument("--clear-allowed-origins", action="store_true", help="allow no origin")
    update_client.set_defaults(run=_update_client)

    apps = commands.add_parser("apps", help="the deployment's own app at each EMR vendor (for Link)")
    app_commands = apps.add_subparsers(dest="apps_command", required=True)
    set_app = app_commands.add_parser(
        "set",
        help="set an EMR's app config (client id and secret, shared by every clinic); stored encrypted",
        epilog=_app_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    set_app.add_argument("--emr", required=True, choices=sorted(emr.MODULES))
    source = set_app.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-file", metavar="PATH", help="a JSON object")
    source.add_argument("--config", metavar="-", help="'-': read the JSON object from stdin")
    set_app.set_defaults(run=_set_app)
    app_commands.add_parser("list", help="the configured apps, without secrets").set_defaults(run=_list_apps)

    connections = commands.add_parser("connections", help="EMR connections of a client")
    connection_commands = connections.add_subparsers(dest="connections_command", required=True)
    create_connection = connection_commands.add_parser(
        "create",
        help="create a connection; prints its access token, shown once",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create_connection.add_argument("--client-id", required=True)
    create_connection.add_argument("--emr", default="sandbox", choices=sorted(emr.MODULES))
    create_connection.add_argument(
        "--rules", help="sandbox: subject_assignee, phone_call, or any EMR's name to take on its rules"
    )
    create_connection.add_argument("--reference-id", help="echoed as access_token_reference_id")
    _add_config_source(create_connection, "the EMR's settings as a JSON object (below)")
    create_connection.set_defaults(run=_create_connection)
    update_connection = connection_commands.add_parser(
        "update",
        help="change settings or credentials (merged over the old); makes the connection active again",
    )
    update_connection.add_argument("--connection-id", required=True)
    _add_config_source(update_connection, "settings to change, as a JSON object")
    update_connection.add_argument("--reference-id")
    update_connection.set_defaults(run=_update_connection)
    sync_connection = connection_commands.add_parser(
        "sync", help="fetch the EMR's users and phone call types now"
    )
    sync_connection.add_argument("--connection-id", required=True)
    sync_connection.set_defaults(run=_sync_connection)
    list_connections = connection_commands.add_parser("list", help="connections, without secrets")
    list_connections.add_argument("--client-id")
    list_connections.set_defaults(run=_list_connections)

    _add_key_commands(commands)

    demo_command = commands.add_parser("demo", help="create a client and tasks, show what happens")
    demo_command.set_defaults(run=_demo)
    return parser


def _add_config_source(command: argparse.ArgumentParser, what: str) -> None:
    """`--config JSON`, `--config -` (stdin) or `--config-file PATH`: secrets given inline are seen
    by `ps` and kept in shell history; stdin and a file are not."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="JSON|-", help=f"{what}; '-' reads it from stdin")
    source.add_argument("--config-file", metavar="PATH", help=f"{what}, in a file")


async def _read_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The JSON object from `--config-file`, `--config -` (stdin) or `--config JSON`; None if none given."""
    if args.config_file:
        try:
            text = await asyncio.to_thread(Path(args.config_file).read_text, encoding="utf-8")
        except OSError as exc:
            raise errors.Problem(
                400, "invalid_config", f"--config-file cannot be read: {exc.strerror}"
            ) from exc
        return _json_object(text)
    if args.config == "-":
        return _json_object(await asyncio.to_thread(sys.stdin.read))
    if args.config is not None:
        return _json_object(args.config)
    return None


def _add_key_commands(commands: Any) -> None:
    signing_keys = commands.add_parser(
        "keys", help="the deployment's signing keys (SMART Backend Services, /.well-known/jwks.json)"
    )
    key_commands = signing_keys.add_subparsers(dest="keys_command", required=True)
    create_key = key_commands.add_parser(
        "create", help="a new key: published at once, signs once EMRTASKS_SIGNING_KEY_PUBLISH_SECONDS passed"
    )
    create_key.add_argument("--alg", default="RS384", choices=["RS384", "ES384"])
    create_key.set_defaults(run=_create_key)
    key_commands.add_parser("list", help="every key, without private material").set_defaults(run=_list_keys)
    retire_key = key_commands.add_parser("retire", help="take a key out of the JWKS; it signs no more")
    retire_key.add_argument("kid")
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

    async with bootstrap.runtime(settings, run_worker=not args.no_worker) as rt:
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
        _on_signals(lambda: setattr(server, "should_exit", True))
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
    _on_signals(stop.set)
    async with bootstrap.runtime(settings, run_worker=True):
        await stop.wait()
    return 0


def _on_signals(callback: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


async def _upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False):
        print("database is at the newest schema")
    return 0


async def _create_client(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        created = await admin.create_client(rt.ctx, args.name)
    print(json.dumps({"client_id": created.client_id, "client_secret": created.client_secret}))
    return 0


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


async def _update_client(settings: Settings, args: argparse.Namespace) -> int:
    from emrtasks.service import link

    wanted = [] if args.clear_allowed_origins else list(args.allowed_origin or [])
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await link.set_allowed_origins(rt.ctx, args.client_id, wanted)
    print(json.dumps({"client_id": args.client_id, "allowed_origins": list(found)}))
    return 0


async def _set_app(settings: Settings, args: argparse.Namespace) -> int:
    from emrtasks.service import link

    if args.config_file is None and args.config != "-":
        raise errors.Problem(
            400, "invalid_config", "--config takes '-' (stdin); use --config-file for a file."
        )
    config = await _read_config(args)
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


def _json_object(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.Problem(400, "invalid_config", f"--config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.Problem(400, "invalid_config", "--config must be a JSON object.")
    return config


async def _update_connection(settings: Settings, args: argparse.Namespace) -> int:
    config = await _read_config(args)
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


async def _create_connection(settings: Settings, args: argparse.Namespace) -> int:
    config = await _read_config(args) or {}
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


async def _demo(settings: Settings, _args: argparse.Namespace) -> int:
    from emrtasks import demo
    from emrtasks.api.app import create_app
    from emrtasks.web import link as web_link

    async with bootstrap.runtime(settings, run_worker=True) as rt:
        app = create_app(rt.ctx, max_body_bytes=settings.max_body_bytes)
        web_link.install(app, bootstrap.form_key(settings))
        return await demo.run(rt.ctx, app)


if __name__ == "__main__":
    sys.exit(main())
