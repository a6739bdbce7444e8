"""The states of what the service tracks, as `StrEnum`s: each member is the very string the database
stores and the API answers, so a member compares equal to a row's value and serialises unchanged."""

from enum import StrEnum


class TaskStatus(StrEnum):
    """A task as its client sees it: processing until its job settles it."""

    PROCESSING = "processing"
    CREATED = "created"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """The EMR may or may not hold it: a person checks before it is sent again."""


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ConnectionStatus(StrEnum):
    """A clinic's EMR link (deletion and disabling are timestamps, not statuses)."""

    ACTIVE = "active"
    LOGIN_REQUIRED = "login_required"


class EndpointStatus(StrEnum):
    """A client's webhook endpoint."""

    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class DeliveryStatus(StrEnum):
    """One event's delivery to one endpoint."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
