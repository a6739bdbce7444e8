"""The one error type the service raises for a request it refuses (`Problem`), which the API renders as the
contract body; `Outage`, which storage raises when the database is out of reach; and `Contention`, which
it raises when a concurrent transaction made ours fail (a deadlock, a serialization failure)."""

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(eq=False)
class Problem(Exception):
    """A refused request: HTTP status, machine code, human message, and each field at fault."""

    status: int
    error: str
    message: str
    errors: tuple[FieldError, ...] = field(default=())
    headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        # An answer stays small whatever was sent: one body with 50,000 unknown keys once got 4.5 MB.
        if len(self.errors) > MAX_ERRORS:
            self.errors = self.errors[:MAX_ERRORS]

    def __str__(self) -> str:
        return f"{self.status} {self.error}: {self.message}"


class Outage(Exception):
    """The database cannot be reached right now (refused, lost or restarting; no pooled connection came
    free). Nobody erred: the same request may succeed in a moment. The driver's error is the cause."""


class Contention(Exception):
    """A concurrent transaction made this one fail (PostgreSQL chose it as a deadlock's victim, or
    found it could not be serialized). Everything it did was rolled back, and the same work succeeds
    when run again: callers that can run their transaction again do (`db.retry_contention`)."""


MAX_ERRORS = 50
"""The most problems one answer lists (the first ones, in the order they were found)."""
MAX_ECHO = 64
"""The longest piece of a request an answer repeats back."""


def echo(value: str) -> str:
    """`value` as an answer may repeat it: at most MAX_ECHO characters, cut ones ending in `...`."""
    return value if len(value) <= MAX_ECHO else value[: MAX_ECHO - 3] + "..."


def name_list(names: list[str], most: int = 10) -> str:
    """`a, b, c`, cut after `most` names with how many more there were."""
    shown = ", ".join(echo(n) for n in names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def unexpected_fields(names: list[str]) -> Problem:
    """The answer to a body with fields its route does not take."""
    found = tuple(unexpected_field(name) for name in names[:MAX_ERRORS])
    return Problem(400, "unexpected_fields", f"Unexpected fields in request body: {name_list(names)}", found)


def unexpected_field(name: str) -> FieldError:
    name = echo(name)
    return FieldError(name, "unexpected_field", f"Unexpected field: {name}.")


INVALID_CLIENT = "Invalid client credentials."
INVALID_TOKEN = "Invalid access token."  # noqa: S105 - a message, not a secret
LOGIN_REQUIRED = "Account link expired. Please go through the integration setup again."


def unauthorized(message: str, *headers: FieldError) -> Problem:
    """Cobalt's 401 (`message`), with an `errors` entry for each header missing or rejected."""
    return Problem(401, "unauthorized", message, headers)


def missing_headers(**given: str | None) -> tuple[FieldError, ...]:
    """An entry for each header given empty or not at all, e.g. `missing_headers(client_id=...)`."""
    return tuple(
        FieldError(name, "missing_header", f"Missing header: {name}.") for name, v in given.items() if not v
    )


def rejected_header(name: str, why: str) -> FieldError:
    return FieldError(name, "invalid_credential", why)


UNKNOWN_CLIENT = rejected_header("client_id", "client_id is not an active client.")
WRONG_SECRET = rejected_header("client_secret", "client_secret does not match the client's secret.")
WRONG_TOKEN = rejected_header("access_token", "access_token is not an active access token of this client.")


def not_found(what: str) -> Problem:
    return Problem(404, "not_found", f"{what} not found.")


def login_required() -> Problem:
    return Problem(403, "login_required", LOGIN_REQUIRED)


def emr_error(message: str, retry_after: float | None = None) -> Problem:
    """The clinic's EMR failed a read made for this request (502: the fault is upstream of us)."""
    return Problem(502, "emr_error", message, headers=_retry_after(retry_after))


def emr_rate_limited(message: str, retry_after: float | None = None) -> Problem:
    """The EMR may not be called now (its rate limit, or the vendor's call budget is spent): try later."""
    return Problem(503, "emr_rate_limited", message, headers=_retry_after(retry_after or 1))


def _retry_after(seconds: float | None) -> tuple[tuple[str, str], ...]:
    return (("Retry-After", str(max(1, math.ceil(seconds)))),) if seconds else ()


def unavailable(message: str, retry_after: int = 1) -> Problem:
    return Problem(503, "service_unavailable", message, headers=(("Retry-After", str(retry_after)),))
