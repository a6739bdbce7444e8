"""Adapters per connection, built on first use, and each EMR's directory (users, call types) cached with a
TTL.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emrtasks import emr
from emrtasks.domain import directory, errors, rules, tasks
from emrtasks.emr import base


@dataclass(frozen=True)
class Directory:
    users: dict[str, directory.User]
    call_types: dict[str, directory.CallType]


class Adapters:
    def __init__(self, deps: base.AdapterDeps, directory_ttl_seconds: float = 300.0) -> None:
        self.deps = deps
        self._ttl = directory_ttl_seconds
        self._built: dict[str, tuple[tasks.Connection, base.Adapter]] = {}
        self._directories: dict[str, tuple[float, Directory]] = {}

    def for_connection(self, connection: tasks.Connection) -> base.Adapter:
        cached = self._built.get(connection.id)
        if cached and cached[0] == connection:
            return cached[1]
        adapter = module_for(connection.emr).build(connection, self.deps)
        self._built[connection.id] = (connection, adapter)
        self._directories.pop(connection.id, None)
        return adapter

    async def directory(self, connection: tasks.Connection, *, refresh: bool = False) -> Directory:
        adapter = self.for_connection(connection)
        cached = self._directories.get(connection.id)
        if cached and not refresh and cached[0] > time.monotonic():
            return cached[1]
        fresh = Directory(
            users={u.id: u for u in await adapter.list_users()},
            call_types={c.id: c for c in await adapter.list_call_types()},
        )
        self._directories[connection.id] = (time.monotonic() + self._ttl, fresh)
        return fresh


def module_for(emr_name: str) -> base.EmrModule:
    module = emr.MODULES.get(emr_name)
    if module is None:
        known = ", ".join(sorted(emr.MODULES))
        raise errors.Problem(400, "unknown_emr", f"Unknown EMR: {emr_name}. Known: {known}.")
    return module


def rules_for(emr_name: str, rules_name: str | None) -> rules.Rules:
    module = module_for(emr_name)
    name = rules_name or module.DEFAULT_RULES
    if name not in module.RULE_SETS:
        known = ", ".join(module.RULE_SETS)
        raise errors.Problem(400, "unknown_rules", f"Unknown rules for {emr_name}: {name}. Known: {known}.")
    return module.RULE_SETS[name]


# Settings every connection takes, whatever its EMR: limits on how hard we drive it.
CONNECTION_LIMITS = ("max_concurrency", "rate_per_second")


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
    value = connection.settings.get("rate_per_second")
    return float(value) if value else module_for(connection.emr).RATE_PER_SECOND
