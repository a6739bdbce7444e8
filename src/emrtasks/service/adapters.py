"""Adapters per connection, built on first use from its settings and decrypted credentials, and each
EMR's directory (users, call types): kept in the database, cached in memory, fetched again when stale."""

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks import emr
from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base
from emrtasks.emr import http as emr_http
from emrtasks.service import telemetry as service_telemetry
from emrtasks.storage import connections, crypto, db, rate_limits

log = logging.getLogger("emrtasks.adapters")

# Settings every connection takes, whatever its EMR: limits on how hard we drive it.
CONNECTION_LIMITS = ("max_concurrency", "rate_per_second")
# How long a process trusts its in-memory copy of a directory before looking at the database again,
# so `emrtasks connections sync` reaches running processes quickly.
_MEMORY_SECONDS = 30.0


@dataclass(frozen=True)
class Directory:
    users: dict[str, directory.User]
    call_types: dict[str, directory.CallType]


class Adapters:
    def __init__(
        self,
        deps: base.AdapterDeps,
        cipher: crypto.Cipher | None = None,
        engine: AsyncEngine | None = None,
        directory_ttl_seconds: float = 300.0,
        telemetry: service_telemetry.Telemetry = service_telemetry.NONE,
    ) -> None:
        self._telemetry = telemetry
        self.deps = dataclasses.replace(deps, save_credentials=self.save_credentials)
        self._cipher = cipher
        self._engine = engine
        self._ttl = directory_ttl_seconds
        self._built: dict[str, tuple[tasks.Connection, base.Adapter]] = {}
        self._directories: dict[str, tuple[float, Directory]] = {}
        self._fetching: dict[str, asyncio.Lock] = {}

    def for_connection(self, connection: tasks.Connection) -> base.Adapter:
        cached = self._built.get(connection.id)
        if cached and cached[0] == connection:
            return cached[1]
        module = emr.module_for(connection.emr)
        config = self.config_of(connection)
        adapter = base.guarded(module.build(connection, config, self._deps_for(module, connection, config)))
        adapter = service_telemetry.observed(adapter, connection.emr, self._telemetry)
        self._built[connection.id] = (connection, adapter)
        self._directories.pop(connection.id, None)
        return adapter

    def for_unsaved(
        self,
        connection: tasks.Connection,
        config: Mapping[str, Any],
        save_credentials: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> base.Adapter:
        """An adapter for a connection not stored yet (Link checks a login before it creates one): built
        from this config, not cached, its rotated secrets handed to `save_credentials` instead of stored."""
        module = emr.module_for(connection.emr)
        deps = dataclasses.replace(self.deps, save_credentials=save_credentials)
        built = base.guarded(module.build(connection, base.with_defaults(module.SETTINGS, config), deps))
        return service_telemetry.observed(built, connection.emr, self._telemetry)

    def config_of(self, connection: tasks.Connection) -> dict[str, Any]:
        """The connection's EMR settings with its secrets decrypted, defaults filled in."""
        secrets: dict[str, Any] = {}
        if connection.credentials and self._cipher is not None:
            secrets = json.loads(self._cipher.decrypt(connection.credentials, credentials_at(connection.id)))
        own = {k: v for k, v in connection.settings.items() if k not in CONNECTION_LIMITS}
        return base.with_defaults(emr.module_for(connection.emr).SETTINGS, {**own, **secrets})

    def _deps_for(
        self, module: base.EmrModule, connection: tasks.Connection, config: Mapping[str, Any]
    ) -> base.AdapterDeps:
        """What the connection's adapter borrows: where its EMR documents a rate limit, the EMR client
        counts every call against the budget it shares (in the database); elsewhere, the plain
        client, and no statement per call."""
        limit = module.RATE_LIMIT
        if limit is None or self._engine is None or self.deps.http is None:
            return self.deps
        take = self._taker(limit.key(connection.emr, connection.id, config), limit)
        return dataclasses.replace(self.deps, http=emr_http.MeteredClient(self.deps.http, take))

    def _taker(self, scope_key: str, limit: base.RateLimit) -> emr_http.TakeCall:
        engine = self._engine
        assert engine is not None

        async def take() -> float | None:
            now = _utc(self.deps)
            return await rate_limits.take(
                engine, scope_key, calls=limit.calls, per_seconds=limit.per_seconds, now=now
            )

        return take

    async def save_credentials(self, connection_id: str, changes: dict[str, Any]) -> None:
        """An adapter's rotated secrets (a new refresh token), merged into the connection's, encrypted."""
        if self._engine is None or self._cipher is None:
            return
        async with db.write(self._engine) as conn:
            found = await connections.get_connection(conn, connection_id)
            if found is None:
                return
            where = credentials_at(connection_id)
            secrets = json.loads(self._cipher.decrypt(found.credentials, where)) if found.credentials else {}
            secrets.update({k: v for k, v in changes.items() if v is not None})
            credentials = self._cipher.encrypt(json.dumps(secrets), where)
            await connections.update_connection(conn, connection_id, _utc(self.deps), credentials=credentials)

    async def directory(self, connection: tasks.Connection, *, refresh: bool = False) -> Directory:
        cached = self._directories.get(connection.id)
        if cached and not refresh and cached[0] > time.monotonic():
            return cached[1]
        # One fetch per connection at a time: a burst of requests shares it instead of each asking the EMR.
        async with self._fetching.setdefault(connection.id, asyncio.Lock()):
            cached = self._directories.get(connection.id)
            if cached and not refresh and cached[0] > time.monotonic():
                return cached[1]
            found = await self._stored_or_fetched(connection, refresh)
            self._directories[connection.id] = (time.monotonic() + min(self._ttl, _MEMORY_SECONDS), found)
            return found

    async def _stored_or_fetched(self, connection: tasks.Connection, refresh: bool) -> Directory:
        stored = await self._stored(connection)
        now = _utc(self.deps)
        if stored and not refresh and stored[0] + timedelta(seconds=self._ttl) > now:
            return stored[1]
        try:
            fresh = await self._fetch(connection)
        except outcomes.AdapterError as exc:
            if stored is None or isinstance(exc.outcome, outcomes.Rejected):
                raise
            log.warning(
                "connection %s: directory refresh failed; using the copy from %s", connection.id, stored[0]
            )
            return stored[1]
        await self._store(connection, fresh, now)
        return fresh

    async def _fetch(self, connection: tasks.Connection) -> Directory:
        adapter = self.for_connection(connection)
        return Directory(
            users={u.id: u for u in await adapter.list_users()},
            call_types={c.id: c for c in await adapter.list_call_types()},
        )

    async def _stored(self, connection: tasks.Connection) -> tuple[datetime, Directory] | None:
        if self._engine is None:
            return None
        async with db.read(self._engine) as conn:
            row = await connections.get_directory(conn, connection.id)
        if row is None:
            return None
        users = {u["id"]: directory.User(u["id"], u["name"], u["kind"]) for u in row.users}
        call_types = {c["id"]: directory.CallType(c["id"], c["name"]) for c in row.call_types}
        return row.fetched_at, Directory(users, call_types)

    async def _store(self, connection: tasks.Connection, found: Directory, now: datetime) -> None:
        if self._engine is None:
            return
        users = [{"id": u.id, "name": u.name, "kind": u.kind} for u in found.users.values()]
        call_types = [{"id": c.id, "name": c.name} for c in found.call_types.values()]
        try:
            async with db.write(self._engine) as conn:
                await connections.save_directory(conn, connection.id, users, call_types, now)
        except IntegrityError:
            log.info("connection %s: another process stored its directory first", connection.id)


def _utc(deps: base.AdapterDeps) -> datetime:
    return base.utc_now(deps)


def module_for(emr_name: str) -> base.EmrModule:
    return emr.module_for(emr_name)


def rules_for(emr_name: str, rules_name: str | None) -> rules.Rules:
    return emr.rules_for(emr_name, rules_name)


def check_limits(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    concurrency = settings.get("max_concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        problems.append("max_concurrency must be a whole number >= 1")
    rate = settings.get("rate_per_second")
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        problems.append("rate_per_second must be a number > 0")
    return problems


def max_concurrency(connection: tasks.Connection) -> int:
    value = connection.settings.get("max_concurrency")
    return int(value) if value else module_for(connection.emr).MAX_CONCURRENCY


def rate_per_second(connection: tasks.Connection) -> float | None:
    """The operator's own cap on job starts per second for this connection (in each worker process),
    on top of the EMR's documented budget (RATE_LIMIT, shared by every process); None for no cap."""
    value = connection.settings.get("rate_per_second")
    return float(value) if value else None


def credentials_at(connection_id: str) -> crypto.Where:
    """Where a connection's encrypted EMR secrets live: what their ciphertext is bound to."""
    return crypto.Where("connections", connection_id, "credentials")
