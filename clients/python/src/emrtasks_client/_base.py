"""What `Client` and `AsyncClient` share: credentials as headers, and the retry decision after each try."""

import random as random_module
from collections.abc import Callable

import httpx

from emrtasks_client import _calls, _retry

VERSION = "0.1.0"
USER_AGENT = f"emrtasks-client/{VERSION} (python; httpx {httpx.__version__})"
DEFAULT_TIMEOUT = 10.0
SORTS = ("created_at", "-created_at")


def auth_headers(client_id: str, client_secret: str, access_token: str | None) -> dict[str, str]:
    """The three headers of the contract; a client without `access_token` reaches only the routes
    that take client credentials alone (webhook URLs, every connection's events)."""
    if not client_id or not client_secret:
        raise ValueError("client_id and client_secret are required")
    headers = {"client_id": client_id, "client_secret": client_secret, "user-agent": USER_AGENT}
    if access_token:
        headers["access_token"] = access_token
    return headers


class RetryState:
    """The retry policy with its source of randomness; decides, after each try of a call, whether to
    wait and how long (None: stop and report)."""

    def __init__(self, policy: _retry.RetryPolicy, random: Callable[[], float] | None) -> None:
        self.policy = policy
        self.random = random or random_module.random

    def after_error(self, retry: bool, tries: int, error: Exception) -> float | None:
        if not (retry and _retry.retryable_error(error)):
            return None
        return self.policy.delay(tries, None, self.random)

    def after_answer(self, retry: bool, tries: int, response: httpx.Response) -> float | None:
        if not retry or response.status_code < 400:
            return None
        if not _retry.retryable_answer(response.status_code, _calls.error_code(response)):
            return None
        retry_after = _retry.parse_retry_after(response.headers.get("retry-after"))
        return self.policy.delay(tries, retry_after, self.random)


def check_wait(timeout: float, poll_interval: float) -> None:
    if timeout <= 0 or poll_interval <= 0:
        raise ValueError("timeout and poll_interval must be positive")


def check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise ValueError("sort must be 'created_at' (oldest first) or '-created_at' (newest first)")
