"""The adapter protocol every EMR module implements, and what bootstrap hands an adapter."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from emrtasks.domain import directory, outcomes, rules, tasks


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


class EmrModule(Protocol):
    """What `emr/__init__.py` registers: one module per EMR kind."""

    NAME: str
    RULE_SETS: Mapping[str, rules.Rules]
    DEFAULT_RULES: str
    MAX_CONCURRENCY: int
    """Writes in flight to one connection at once (1 for an EMR driven through its screens)."""
    RATE_PER_SECOND: float | None
    """Calls per second one connection may make, where the vendor documents a limit."""

    def check_settings(self, settings: Mapping[str, Any]) -> list[str]: ...

    def build(self, connection: tasks.Connection, deps: "AdapterDeps") -> Adapter: ...


@dataclass(frozen=True)
class AdapterDeps:
    """Shared resources bootstrap owns; adapters borrow them."""

    sandbox_store: Any
