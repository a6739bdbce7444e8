"""Requests per second per client app and per EMR connection: token buckets in this process's memory.

Each process counts on its own, so N API processes let a caller through at up to N times the limit
(docs/security.md says so). Exact counting across processes would cost a database write on every
request, `POST /v1/tasks` included, to stop callers that a limit this coarse only has to slow down;
the vendors' call budgets, which must be exact, are counted in the database (storage/rate_limits.py).

A refusal is `429` with `Retry-After` and the fields of the IETF draft
draft-ietf-httpapi-ratelimit-headers-10 (https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/):
`RateLimit-Policy: "connection";q=2000;w=10` (the bucket holds q requests and refills them in w
seconds) and `RateLimit: "connection";r=0;t=1` (r left now, the bucket whole again in t seconds).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from emrtasks.domain import errors


@dataclass(frozen=True)
class Limit:
    """`per_second` requests a second, with a burst of `burst_seconds` of them; 0 turns it off."""

    name: str
    per_second: float
    burst_seconds: float = 10.0

    @property
    def capacity(self) -> float:
        return max(self.per_second * self.burst_seconds, 1.0)


@dataclass
class Buckets:
    """One token bucket per key (a client id or a connection id: only authenticated callers are
    counted, so the keys are bounded by the credentials that exist)."""

    limit: Limit
    _state: dict[str, list[float]] = field(default_factory=dict)
    """key -> [tokens, when they were counted (seconds)]"""

    def take(self, key: str, now: float) -> None:
        """Spend one request, or raise 429 saying when the next one is allowed."""
        limit = self.limit
        state = self._state.get(key)
        if state is None:
            self._state[key] = [limit.capacity - 1.0, now]
            return
        # A clock that steps back (wall time) refills nothing rather than going negative.
        tokens = min(limit.capacity, state[0] + max(now - state[1], 0.0) * limit.per_second)
        if tokens >= 1.0:
            state[0], state[1] = tokens - 1.0, now
            return
        state[0], state[1] = tokens, now
        raise _refused(limit, tokens)


def _refused(limit: Limit, tokens: float) -> errors.Problem:
    wait = math.ceil((1.0 - tokens) / limit.per_second)
    full = math.ceil((limit.capacity - tokens) / limit.per_second)
    window = math.ceil(limit.burst_seconds)
    rate = f"{limit.per_second:g}"
    message = (
        f"Too many requests for this {limit.name}: the limit is {rate} per second "
        f"(bursts of {limit.capacity:.0f}). Retry after {wait} s."
    )
    return errors.Problem(
        429,
        "rate_limited",
        message,
        headers=(
            ("Retry-After", str(max(wait, 1))),
            ("RateLimit-Policy", f'"{limit.name}";q={limit.capacity:.0f};w={window}'),
            ("RateLimit", f'"{limit.name}";r=0;t={max(full, 1)}'),
        ),
    )


class RequestLimits:
    """The two limits of the API; a limit of 0 requests per second is off and costs nothing."""

    def __init__(
        self,
        *,
        client_per_second: float = 0.0,
        connection_per_second: float = 0.0,
        burst_seconds: float = 10.0,
    ) -> None:
        self.clients = (
            Buckets(Limit("client", client_per_second, burst_seconds)) if client_per_second else None
        )
        self.connections = (
            Buckets(Limit("connection", connection_per_second, burst_seconds))
            if connection_per_second
            else None
        )

    def client(self, client_id: str, clock: Callable[[], datetime]) -> None:
        if self.clients is not None:
            self.clients.take(client_id, clock().timestamp())

    def connection(self, connection_id: str, clock: Callable[[], datetime]) -> None:
        if self.connections is not None:
            self.connections.take(connection_id, clock().timestamp())
