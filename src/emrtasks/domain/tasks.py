"""Tasks and jobs as the service knows them: the accepted request, statuses, and the tenancy records."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emrtasks.domain import states

PROCESSING = states.TaskStatus.PROCESSING
CREATED = states.TaskStatus.CREATED
FAILED = states.TaskStatus.FAILED
UNKNOWN = states.TaskStatus.UNKNOWN
TERMINAL = frozenset({CREATED, FAILED, UNKNOWN})

CONNECTION_ACTIVE = states.ConnectionStatus.ACTIVE
CONNECTION_LOGIN_REQUIRED = states.ConnectionStatus.LOGIN_REQUIRED


@dataclass(frozen=True)
class TaskRequest:
    """A validated Create Task request: strings trimmed, absent optionals as None."""

    description: str
    patient_mrn: str
    subject: str | None = None
    assignee_user_id: str | None = None
    phone_call_type_id: str | None = None
    notify_list: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Client:
    id: str
    name: str


@dataclass(frozen=True)
class Connection:
    id: str
    client_id: str
    emr: str
    rules: str
    reference_id: str | None
    status: states.ConnectionStatus
    settings: Mapping[str, Any]
    credentials: str | None = None
    """The EMR secrets of this connection, encrypted; decrypted only to build its adapter."""
