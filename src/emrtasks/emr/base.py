"""The adapter protocol every EMR module implements, what bootstrap hands an adapter, and the settings
each EMR needs (documented and checked from one declaration)."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import signing


class Adapter(Protocol):
    """One connection's view of its EMR. Read calls raise `outcomes.AdapterError`; writes return outcomes."""

    rules: rules.Rules

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]: ...

    async def list_users(self) -> list[directory.User]: ...

    async def list_call_types(self) -> list[directory.CallType]: ...

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome: ...

    async def find_task(self, marker: str) -> outcomes.Lookup: ...


@dataclass(frozen=True)
class Setting:
    """One entry of a connection's `--config` for an EMR."""

    name: str
    description: str
    required: bool = True
    secret: bool = False
    """Kept encrypted in the connection, never shown back."""
    kind: type = str
    default: Any = None


@dataclass(frozen=True)
class AdapterDeps:
    """Shared resources bootstrap owns; adapters borrow them."""

    sandbox_store: Any
    http: httpx.AsyncClient | None = None
    clock: Any = None
    save_credentials: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    """For EMRs that rotate secrets (a refresh token good once): store the new ones for the connection
    (by id), encrypted, so a restart does not reuse a spent one."""
    signer: signing.Signer | None = None
    """The deployment's current signing key, for SMART Backend Services client assertions (keys are
    kept by the service; an adapter never reads them from the database)."""


class EmrModule(Protocol):
    """What `emr/__init__.py` registers: one module per EMR kind."""

    NAME: str
    TITLE: str
    RULE_SETS: Mapping[str, rules.Rules]
    DEFAULT_RULES: str
    SETTINGS: Sequence[Setting]
    MAX_CONCURRENCY: int
    """Writes in flight to one connection at once (1 for an EMR driven through its screens)."""
    RATE_PER_SECOND: float | None
    """Calls per second one connection may make, where the vendor documents a limit."""

    def check_config(self, config: Mapping[str, Any]) -> list[str]: ...

    def build(
        self, connection: tasks.Connection, config: Mapping[str, Any], deps: AdapterDeps
    ) -> Adapter: ...


def check_config(settings: Sequence[Setting], config: Mapping[str, Any]) -> list[str]:
    """Every problem with a connection's config against its EMR's settings, in words for a person."""
    known = {s.name: s for s in settings}
    problems = [f"unknown setting: {name}" for name in config if name not in known]
    for setting in settings:
        value = config.get(setting.name)
        if value is None or value == "":
            if setting.required and setting.default is None:
                problems.append(f"missing setting: {setting.name} ({setting.description})")
            continue
        if not _has_kind(value, setting.kind):
            problems.append(f"{setting.name} must be {_kind_name(setting.kind)}")
    return problems


def with_defaults(settings: Sequence[Setting], config: Mapping[str, Any]) -> dict[str, Any]:
    found = {s.name: s.default for s in settings if s.default is not None}
    found.update({k: v for k, v in config.items() if v is not None})
    return found


def _has_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: type) -> str:
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
    }.get(kind, kind.__name__)


def utc_now(deps: AdapterDeps) -> datetime:
    from datetime import UTC

    return deps.clock() if deps.clock else datetime.now(UTC)
