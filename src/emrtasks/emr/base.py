"""The adapter protocol every EMR module implements, what bootstrap hands an adapter, and the settings
each EMR needs (documented and checked from one declaration)."""

import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import signing

log = logging.getLogger("emrtasks.emr")
_T = TypeVar("_T")


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


class BadAnswer(Exception):
    """An EMR answer that cannot be read as the vendor documents it (HTML where JSON was due, a body
    of the wrong shape). `guarded` turns it into the outcome a read or a write calls for."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"HTTP {status} with {what}")
        self.status = status
        self.what = what


class MissingDependency(RuntimeError):
    """An adapter built without a resource bootstrap owns and hands it (the shared EMR HTTP client, the
    deployment's signer): a wiring fault, the same type whichever adapter and resource it is."""

    def __init__(self, emr: str, resource: str) -> None:
        super().__init__(f"the {emr} adapter needs {resource}")
        self.emr = emr
        self.resource = resource


HTTP_CLIENT = "the shared EMR HTTP client"
SIGNER = "the deployment's signer"


def http_of(deps: "AdapterDeps", emr: str) -> httpx.AsyncClient:
    """The shared EMR HTTP client, or `MissingDependency` naming the adapter that needed it."""
    if deps.http is None:
        raise MissingDependency(emr, HTTP_CLIENT)
    return deps.http


def signer_of(deps: "AdapterDeps", emr: str) -> signing.Signer:
    """The deployment's signer, or `MissingDependency` naming the adapter that needed it."""
    if deps.signer is None:
        raise MissingDependency(emr, SIGNER)
    return deps.signer


# What reading an answer of the wrong shape raises in adapter code (a missing key, a list where an
# object was due, a null, text that is not a number): the EMR's fault, never a 500 of ours.
_UNREADABLE = (BadAnswer, KeyError, IndexError, TypeError, AttributeError, ValueError)


def guarded(adapter: Adapter) -> Adapter:
    """The adapter, with answers it cannot read turned into outcomes: a read raises
    `AdapterError(RetryLater(EMR_ERROR))` (the job tries again later; an API read answers 502), and a
    write whose answer cannot be read is `Unknown` (it reached the EMR, which may have written it)."""
    return adapter if isinstance(adapter, _Guarded) else _Guarded(adapter)


def _unreadable(exc: Exception, what: str) -> str:
    if isinstance(exc, BadAnswer):
        return f"The EMR answered {what} with HTTP {exc.status} and {exc.what}."
    # The type and place only: an exception's text may quote the answer, and answers carry PHI.
    return f"The EMR's answer to {what} could not be read ({type(exc).__name__})."


class _Guarded:
    def __init__(self, inner: Adapter) -> None:
        self._inner = inner
        self.rules = inner.rules

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)  # AttributeError as the inner adapter: FindsInChart stays honest
        return self._lookup_guarded(found) if name == "find_task_in_chart" else found

    def _lookup_guarded(
        self, lookup: Callable[..., Awaitable[outcomes.Lookup]]
    ) -> Callable[..., Awaitable[outcomes.Lookup]]:
        async def guarded_lookup(marker: str, *patient: directory.Patient) -> outcomes.Lookup:
            try:
                return await lookup(marker, *patient)
            except _UNREADABLE as exc:
                _log_unreadable(exc, self._inner)
                return outcomes.RetryLater(outcomes.EMR_ERROR, _unreadable(exc, "the lookup by marker"))

        return guarded_lookup

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        return await self._read("the patient search", self._inner.search_patients(mrn))

    async def list_users(self) -> list[directory.User]:
        return await self._read("the user list", self._inner.list_users())

    async def list_call_types(self) -> list[directory.CallType]:
        return await self._read("the call type list", self._inner.list_call_types())

    async def _read(self, what: str, pending: Awaitable[_T]) -> _T:
        try:
            return await pending
        except _UNREADABLE as exc:
            _log_unreadable(exc, self._inner)
            raise outcomes.AdapterError(
                outcomes.RetryLater(outcomes.EMR_ERROR, _unreadable(exc, what))
            ) from exc

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            return await self._inner.create_task(request, patient, marker)
        except _UNREADABLE as exc:
            _log_unreadable(exc, self._inner)
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _unreadable(exc, "the task"))

    async def find_task(self, marker: str) -> outcomes.Lookup:
        return await self._lookup_guarded(self._inner.find_task)(marker)


def _log_unreadable(exc: Exception, adapter: object) -> None:
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if "emrtasks" in f.filename]
    place = f"{ours[-1].filename.rsplit('/', 1)[-1]}:{ours[-1].lineno}" if ours else "?"
    log.warning(
        "%s: an EMR answer could not be read (%s at %s)", type(adapter).__name__, type(exc).__name__, place
    )


@runtime_checkable
class FindsInChart(Protocol):
    """An adapter whose EMR lists written records only per patient (athenahealth lists a patient's cases
    per department and has no practice-wide search): the lookup is given the task's patient."""

    async def find_task_in_chart(self, marker: str, patient: directory.Patient) -> outcomes.Lookup: ...


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
    held_by: str = "clinic"
    """Who supplies it: `clinic` (entered on the Link page), `deployment` (the vendor app's client id and
    secret, shared by every clinic: `emrtasks apps set`) or `oauth` (tokens the authorization gives)."""


CLINIC = "clinic"
DEPLOYMENT = "deployment"
OAUTH = "oauth"


@dataclass(frozen=True)
class OAuthEndpoints:
    """How an EMR grants access by per-practice consent: OAuth 2.0 authorization code with PKCE.

    `authorize_url` and `token_url` are templates over the connection's config: `{base_url}` is that
    setting's value, `{token_url|origin}` the scheme and host of it. With `smart_discovery`, both come
    from `<base_url>/.well-known/smart-configuration` (SMART App Launch, standalone launch).
    `token_fields` maps fields of the token answer to the settings they fill.
    `when_configured`: offered only when the deployment's app config says `"oauth": true`."""

    authorize_url: str = ""
    token_url: str = ""
    scopes: tuple[str, ...] = ()
    token_fields: Mapping[str, str] = field(default_factory=dict)
    smart_discovery: bool = False
    when_configured: bool = False
    secret_in_body: bool = True
    """The client secret goes in the token request's form (DrChrono) or, when False, in HTTP Basic
    (`client_secret_basic`, as SMART App Launch asks of confidential clients)."""


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
    keep_evidence: Callable[[str, bytes, str], Awaitable[str]] | None = None
    """For adapters that drive screens: keeps a failed step's name, screenshot and page text encrypted
    for the operator; the kept file's name."""


CONNECTION_SCOPE = "connection"


@dataclass(frozen=True)
class RateLimit:
    """A vendor's documented call budget: `calls` per `per_seconds`, counted in fixed windows that
    start on multiples of `per_seconds` since the epoch (on the hour, on the minute), as the vendors
    that document one reset theirs. Every HTTP call counts, token fetches included."""

    calls: int
    per_seconds: float
    scope: str = CONNECTION_SCOPE
    """Who shares the budget: the name of the connection setting whose value the vendor counts by
    (DrChrono: `client_id`, one budget per API application), or `connection` for each its own."""

    def key(self, emr: str, connection_id: str, config: Mapping[str, Any]) -> str:
        """The budget's name: connections whose keys are equal spend one budget."""
        value = config.get(self.scope) if self.scope != CONNECTION_SCOPE else None
        if value is None:  # no setting to share by: the connection's own budget
            return f"{emr}:{CONNECTION_SCOPE}:{connection_id}"
        return f"{emr}:{self.scope}:{str(value).strip().rstrip('/')}"


class EmrModule(Protocol):
    """What `emr/__init__.py` registers: one module per EMR kind."""

    NAME: str
    TITLE: str
    RULE_SETS: Mapping[str, rules.Rules]
    DEFAULT_RULES: str
    SETTINGS: Sequence[Setting]
    MAX_CONCURRENCY: int
    """Writes in flight to one connection at once (1 for an EMR driven through its screens)."""
    RATE_LIMIT: RateLimit | None
    """The vendor's documented call budget and whom it is shared by; None where none is documented."""

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
