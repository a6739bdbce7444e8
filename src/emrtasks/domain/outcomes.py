"""What an adapter says happened: `Created`, `Rejected`, `RetryLater`, `Unknown`, and `Absent` for a lookup.

Reason codes are the machine-readable `reasons[].code` of a `task.failed` event.
"""

from dataclasses import dataclass

PATIENT_NOT_FOUND = "PATIENT_NOT_FOUND"
PATIENT_AMBIGUOUS = "PATIENT_AMBIGUOUS"
USER_NOT_FOUND = "USER_NOT_FOUND"
LOGIN_REQUIRED = "LOGIN_REQUIRED"
EMR_REJECTED = "EMR_REJECTED"
EMR_UNAVAILABLE = "EMR_UNAVAILABLE"
EMR_RATE_LIMITED = "EMR_RATE_LIMITED"
EMR_ERROR = "EMR_ERROR"
"""The EMR answered, but not in a form we can read (HTML where JSON was due, a body of the wrong shape)."""
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
INTERNAL_ERROR = "INTERNAL_ERROR"


@dataclass(frozen=True)
class Created:
    emr_task_id: str


@dataclass(frozen=True)
class Rejected:
    """Permanent: the EMR refused the task and retrying cannot help."""

    code: str
    description: str


@dataclass(frozen=True)
class RetryLater:
    """Transient, and the write certainly did not happen: safe to try again."""

    code: str
    description: str
    retry_after: float | None = None
    budget: bool = False
    """Our count of the EMR's documented call budget refused the call before it left: the EMR never
    saw this attempt, so it is not counted against the job's attempts and waits `retry_after`."""


@dataclass(frozen=True)
class Unknown:
    """The write may or may not have happened: look it up by marker before anything is retried."""

    code: str
    description: str


@dataclass(frozen=True)
class Absent:
    """A lookup by marker that is certain the EMR holds no such task."""


Outcome = Created | Rejected | RetryLater | Unknown
Lookup = Created | Absent | RetryLater | Unknown


class AdapterError(Exception):
    """Raised by an adapter's read calls (patients, users) with the outcome the job should take."""

    def __init__(self, outcome: Rejected | RetryLater) -> None:
        super().__init__(outcome.description)
        self.outcome = outcome
