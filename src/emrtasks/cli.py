"""The command line: serve, worker, db upgrade, clients (create, update, list, rotate-secret, disable,
enable, delete), connections (create, update, sync, list, rotate-token, disable, enable, delete), keys
(create, list, retire), apps (set, list: the deployment's app at each EMR vendor, for Link), audit
(list), demo. Every operator command leaves a row in the audit trail (docs/security.md)."""

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
from emrtasks.service import admin, audit, credentials, keys

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
    _add_lifecycle_commands(client_commands, connection_commands)
    _add_audit_commands(commands)
    _audit_operator_commands(parser)

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


def _add_lifecycle_commands(client_commands: Any, connection_commands: Any) -> None:
    client_commands.add_parser("list", help="clients and their state, without secrets").set_defaults(
        run=_list_clients
    )
    rotate = client_commands.add_parser(
        "rotate-secret", help="a new secret, printed once; the old one works until the overlap ends"
    )
    rotate.add_argument("--client-id", required=True)
    rotate.add_argument("--overlap-seconds", type=float, default=0.0, help="default 0: the old one stops now")
    rotate.set_defaults(run=_rotate_client_secret)
    for name, run, what in (
        ("disable", _disable_client, "refuse the client's credentials (every process, within a second)"),
        ("enable", _enable_client, "accept a disabled client's credentials again"),
        ("delete", _delete_client, "delete the client, its connections and webhooks; pending work ends"),
    ):
        command = client_commands.add_parser(name, help=what)
        command.add_argument("--client-id", required=True)
        command.set_defaults(run=run)
    rotate_token = connection_commands.add_parser(
        "rotate-token", help="a new access token, printed once; the old one works until the overlap ends"
    )
    rotate_token.add_argument("--connection-id", required=True)
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
        command.add_argument("--connection-id", required=True)
        command.set_defaults(run=run)


def _add_audit_commands(commands: Any) -> None:
    trail = commands.add_parser("audit", help="the audit trail (HIPAA 164.312(b))")
    trail_commands = trail.add_subparsers(dest="audit_command", required=True)
    listing = trail_commands.add_parser("list", help="audit rows as JSON lines, oldest first")
    listing.add_argument("--since", help="ISO 8601 time, e.g. 2026-12-03T00:00:00Z")
    listing.add_argument("--client-id")
    listing.add_argument("--action", help="e.g. task.accept, task.read, client.disable")
    listing.add_argument("--limit", type=int, default=10_000)
    listing.set_defaults(run=_list_audit)


# Commands that write their own audit row inside the transaction of their change, and commands that
# are not operator actions on data (they run the service).
_SELF_AUDITED = frozenset({"rotate-secret", "rotate-token", "disable", "enable", "delete"})
_NOT_AUDITED = frozenset({"serve", "worker", "demo"})


def _audit_operator_commands(parser: argparse.ArgumentParser) -> None:
    """Every other operator command gets a row once it ends, with how it ended."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, command in getattr(action, "choices", {}).items():
            if name in _NOT_AUDITED:
                continue
            _wrap_command(command, name)


def _wrap_command(command: argparse.ArgumentParser, path: str) -> None:
    nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
    if nested:
        for name, sub in nested[0].choices.items():
            _wrap_command(sub, f"{path}.{name}")
        return
    run = command.get_default("run")
    if run is not None:
        failures_only = path.rpartition(".")[2] in _SELF_AUDITED
        command.set_defaults(run=_audited(f"cli.{path}".replace("-", "_"), run, failures_only))


def _audited(action: str, run: Any, failures_only: bool = False) -> Any:
    """`failures_only`: the command records its success itself, inside its transaction."""

    async def audited(settings: Settings, args: argparse.Namespace) -> int:
        outcome = audit.FAILED
        try:
            result: int = await run(settings, args)
            outcome = audit.SUCCESS if result == 0 else audit.FAILED
            return result
        except errors.Problem as problem:
            outcome = audit.NOT_FOUND if problem.status == 404 else audit.FAILED
            raise
        finally:
            if outcome != audit.SUCCESS or not failures_only:
                await _record_operator_action(settings, action, args, outcome)

    return audited


async def _record_operator_action(
    settings: Settings, action: str, args: argparse.Namespace, outcome: str
) -> None:
    from emrtasks.storage import db

    names = ("client_id", "connection_id", "kid", "emr")
    targets = {name: str(getattr(args, name)) for name in names if getattr(args, name, None) is not None}
    try:
        async with bootstrap.runtime(settings, run_worker=False) as rt, db.write(rt.engine) as conn:
            await audit.record_in(
                conn,
                audit.operator(),
                action,
                rt.ctx.clock(),
                targets=targets,
                outcome=outcome,
                client_id=targets.get("client_id"),
                connection_id=targets.get("connection_id"),
            )
    except Exception as exc:  # the command's own error matters more; say the row is missing
        print(
            f"warning: the audit row for {action} could not be written: {type(exc).__name__}", file=sys.stderr
        )


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
                "previous_secret_expires_at": _iso(rotated.previous_expires_at),
            }
        )
    )
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
                "previous_token_expires_at": _iso(rotated.previous_expires_at),
            }
        )
    )
    return 0


def _iso(value: Any) -> str | None:
    from emrtasks.webhooks import events

    return events.iso(value) if value is not None else None


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


async def _list_audit(settings: Settings, args: argparse.Namespace) -> int:
    import datetime as dt

    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError as exc:
            raise errors.Problem(400, "invalid_since", "--since must be an ISO 8601 time.") from exc
        since = since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since
    async with bootstrap.runtime(settings, run_worker=False) as rt:
        found = await audit.list_rows(
            rt.ctx, since=since, client_id=args.client_id, action=args.action, limit=args.limit
        )
    for row in found:
        print(json.dumps({**row, "at": _iso(row["at"])}, sort_keys=True))
    return 0


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

    async with (
        bootstrap.runtime(settings, run_worker=not args.no_worker, observe=True) as rt,
        bootstrap.credential_changes(settings, rt.ctx),
    ):
        app = create_app(
            rt.ctx,
            max_body_bytes=settings.max_body_bytes,
            bench_routes=settings.bench_routes,
            telemetry=rt.telemetry,
        )
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
    async with bootstrap.runtime(settings, run_worker=True, observe=True):
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
