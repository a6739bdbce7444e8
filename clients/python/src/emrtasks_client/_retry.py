"""When to try a request again and how long to wait first: pure decisions, no I/O, no sleeping."""

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

# Answers worth another try: the server or the EMR is busy, or the first try of the same
# Idempotency-Key is still being processed (sent again after a timeout, say).
_RETRY_STATUSES = frozenset({429, 503})
_IN_FLIGHT = "idempotency_key_in_flight"
# Failures where no answer came; a request that did reach the server is answered again from its
# idempotency record, so trying again never writes twice.
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: before try n+1 wait `base_delay * 2**(n-1)` (at most
    `max_delay`), scaled by a random factor in [0.5, 1); never less than the server's `Retry-After`.
    At most `max_attempts` tries in all; a `Retry-After` above `max_delay` is not waited out but
    raised at once (as `RateLimitError` or `ServiceUnavailable`). `RetryPolicy(max_attempts=1)` never
    retries."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_attempts must be at least 1 and delays not negative")

    def delay(self, tries: int, retry_after: float | None, random: Callable[[], float]) -> float | None:
        """Seconds to wait after `tries` failed tries, or None to give up."""
        if tries >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_delay:
            return None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (tries - 1))
        jittered = backoff * (0.5 + random() / 2)
        return max(jittered, retry_after or 0.0)


def retryable_answer(status_code: int, error: str | None) -> bool:
    return status_code in _RETRY_STATUSES or (status_code == 409 and error == _IN_FLIGHT)


def retryable_error(error: Exception) -> bool:
    return isinstance(error, _RETRY_ERRORS)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delay-seconds or an HTTP date (RFC 9110 10.2.3); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, math.ceil(seconds))
