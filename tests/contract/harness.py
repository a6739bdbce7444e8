"""The contract harness: a vendor fake (an ASGI app enforcing the vendor's documented contract, with
seeded patients and users), a transport that records requests and injects faults, a `Case` per
adapter so one suite runs over every EMR, and the pieces every vendor's own tests share (`wired`,
`wired_fixture`, `patient`, `post_to_fake`).

Seed every fake with: MRN-1001 (one patient), MRN-2000 (two different patients), MRN-9999 absent;
the users and call types the Case's request names, and at least one more of each.
"""

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from emrtasks.domain import directory, states, tasks
from emrtasks.emr import base
from emrtasks.service import create_task
from emrtasks.storage import tasks as stored_tasks
from tests.contract import openapi_check


class FakeEMR:
    """Subclass per vendor: build `self.app` (Starlette) in __init__, keep `self.created` (the vendor's
    stored tasks, as the vendor holds them), and answer 401 to tokens not in `self.tokens`."""

    app: Any

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens: set[str] = set()
        self.issued = 0
        self.failures: list[tuple[int, dict[str, str], bytes]] = []
        self.timeout_after_next_write = False
        self.refuse_credentials = False
        self.created: list[dict[str, Any]] = []
        self.spec: openapi_check.Spec | None = None
        """The vendor's published OpenAPI document, where there is one: every request is checked
        against it before the fake sees it (see `served_app`)."""
        self.spec_violations: list[str] = []

    def spec_skips(self, path: str) -> bool:
        """Override: True for paths the vendor's spec does not cover (an OAuth token endpoint)."""
        return False

    def served_app(self) -> Any:
        """The fake as the adapter reaches it: behind the vendor's spec, when the vendor publishes one."""
        if self.spec is None:
            return self.app
        return openapi_check.SpecCheck(self.app, self.spec, self.spec_violations, skip=self.spec_skips)

    # --- used by the vendor fakes' handlers ---
    def issue_token(self) -> str:
        self.issued += 1
        token = f"token-{self.issued}"
        self.tokens.add(token)
        return token

    def bearer_ok(self, authorization: str | None) -> bool:
        return bool(authorization) and authorization.removeprefix("Bearer ").strip() in self.tokens

    def is_token_request(self, request: httpx.Request) -> bool:
        """Override: True for the vendor's token endpoint (faults are not injected there)."""
        return False

    # --- used by the tests ---
    def expire_tokens(self) -> None:
        self.tokens.clear()

    def fail_next(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"{}") -> None:
        self.failures.append((status, headers or {"content-type": "application/json"}, body))

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if not self.is_token_request(r)]

    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if self.is_token_request(r)]


class FakeTransport(httpx.AsyncBaseTransport):
    """Routes to the fake's ASGI app; records each request; applies the fake's queued faults."""

    def __init__(self, fake: FakeEMR) -> None:
        self.fake = fake
        self._asgi = httpx.ASGITransport(app=fake.served_app())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.fake.requests.append(request)
        if not self.fake.is_token_request(request):
            if self.fake.failures:
                status, headers, body = self.fake.failures.pop(0)
                return httpx.Response(status, headers=headers, content=body, request=request)
            if self.fake.timeout_after_next_write and request.method in ("POST", "PUT", "PATCH"):
                self.fake.timeout_after_next_write = False
                await self._asgi.handle_async_request(request)  # the EMR writes...
                raise httpx.ReadTimeout("the reply was lost", request=request)  # ...the reply never comes
        return await self._asgi.handle_async_request(request)


@dataclass
class Case:
    """How to run the shared contract suite against one adapter."""

    emr: str
    """The module's NAME in emrtasks.emr."""
    make_fake: Callable[[], FakeEMR]
    config: Callable[[str], dict[str, Any]]
    """The connection's --config for a fake served at this base URL."""
    request: tasks.TaskRequest
    """A valid request for this EMR: patient MRN-1001, a known assignee (and call type if required)."""
    unknown_assignee: str
    refreshes_tokens: bool = True
    """False for API-key EMRs: a refused key can only mean login_required."""
    extra: dict[str, Any] = field(default_factory=dict)
    """`signer`: the deployment's signer the adapter borrows (SMART Backend Services EMRs)."""


BASE_URL = "http://emr.test"


def build_adapter(
    case: Case, fake: FakeEMR, base_url: str = BASE_URL, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[base.Adapter, httpx.AsyncClient]:
    """The real adapter, talking to the fake through the recording transport (or the one given)."""
    from emrtasks import emr

    module = emr.module_for(case.emr)
    # No base_url, as in production (bootstrap.py): the adapter must resolve an EMR's relative URLs.
    http = httpx.AsyncClient(transport=transport or FakeTransport(fake))
    connection = tasks.Connection(
        id="conn_contract",
        client_id="ci_contract",
        emr=case.emr,
        rules=module.DEFAULT_RULES,
        reference_id=None,
        status=tasks.CONNECTION_ACTIVE,
        settings={},
    )
    config = base.with_defaults(module.SETTINGS, case.config(base_url))
    problems = module.check_config(config)
    assert not problems, problems
    deps = base.AdapterDeps(sandbox_store=None, http=http, signer=case.extra.get("signer"))
    return module.build(connection, config, deps), http


@asynccontextmanager
async def wired(case: Case) -> AsyncIterator[tuple[base.Adapter, Any]]:
    """The case's adapter wired to a new fake of its vendor; on exit its client is closed and every
    request it sent must have passed the vendor's published spec."""
    fake = case.make_fake()
    adapter, http = build_adapter(case, fake)
    try:
        yield adapter, fake
    finally:
        await http.aclose()
    assert fake.spec_violations == [], "requests the vendor's published spec refuses"


def wired_fixture(case: Case) -> Any:
    """A vendor test module's `wired` fixture: `(adapter, fake)` for its case (see `wired`)."""

    @pytest.fixture(name="wired")
    async def _wired() -> AsyncIterator[tuple[base.Adapter, Any]]:
        async with wired(case) as pair:
            yield pair

    return _wired


def task_row(task_id: str, mrn: str = "MRN-1001") -> stored_tasks.TaskRow:
    """A stored task as the create_task job reads it: its id is the marker, its MRN finds the chart."""
    now = datetime.now(UTC)
    return stored_tasks.TaskRow(
        task_id, "cli_c", "con_c", "job_c", states.TaskStatus.UNKNOWN, "Call back", mrn,
        None, None, None, [], None, None, [], now, now,
    )  # fmt: skip


async def patient(adapter: base.Adapter, mrn: str = "MRN-1001") -> directory.Patient:
    """The one patient the adapter finds for the MRN, as the worker resolves it."""
    found = await create_task.resolve_patient(adapter, mrn)
    assert isinstance(found, directory.Patient), found
    return found


async def post_to_fake(
    fake: FakeEMR, path: str, *, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    """POST straight to a vendor's fake (no adapter) with a bearer token it accepts, or `token` if
    given: for tests of what the fake itself refuses. `kwargs` go to httpx (`json`, `data`, `headers`)."""
    headers = {"authorization": f"Bearer {token or fake.issue_token()}", **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(transport=FakeTransport(fake), base_url=BASE_URL) as http:
        return await http.post(path, headers=headers, **kwargs)


@contextmanager
def serve_fake(fake: FakeEMR) -> Iterator[str]:
    """The fake on a real loopback port, for end-to-end tests; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(fake.served_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
