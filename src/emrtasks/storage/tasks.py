"""Task records: the accepted request, its status and the EMR's answer. Always read within a connection."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from emrtasks.domain import states
from emrtasks.domain import tasks as domain_tasks
from emrtasks.storage import rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import tasks


@dataclass(frozen=True)
class TaskRow:
    """A task as stored: the accepted request, its status and the EMR's answer (fields in the
    table's column order)."""

    id: str
    client_id: str
    connection_id: str
    job_id: str
    status: states.TaskStatus
    description: str
    patient_mrn: str
    subject: str | None
    assignee_user_id: str | None
    phone_call_type_id: str | None
    notify_list: list[str] | None
    emr_task_id: str | None
    failure_reason: str | None
    reasons: list[dict[str, str]] | None
    created_at: datetime
    updated_at: datetime


def task_row(
    *,
    task_id: str,
    job_id: str,
    connection: domain_tasks.Connection,
    request: domain_tasks.TaskRequest,
    now: datetime,
) -> dict[str, Any]:
    """An accepted task's row, as storage/steps.py writes it."""
    return {
        "id": task_id,
        "client_id": connection.client_id,
        "connection_id": connection.id,
        "job_id": job_id,
        "status": domain_tasks.PROCESSING,
        "description": request.description,
        "patient_mrn": request.patient_mrn,
        "subject": request.subject,
        "assignee_user_id": request.assignee_user_id,
        "phone_call_type_id": request.phone_call_type_id,
        "notify_list": list(request.notify_list),
        "reasons": [],
        "created_at": now,
        "updated_at": now,
    }


async def get_task(conn: DbConnection, task_id: str, connection_id: str | None = None) -> TaskRow | None:
    query = select(tasks).where(tasks.c.id == task_id)
    if connection_id is not None:
        query = query.where(tasks.c.connection_id == connection_id)
    return rows.first(TaskRow, (await conn.execute(query)).mappings().first())


def to_request(row: TaskRow) -> domain_tasks.TaskRequest:
    return domain_tasks.TaskRequest(
        description=row.description,
        patient_mrn=row.patient_mrn,
        subject=row.subject,
        assignee_user_id=row.assignee_user_id,
        phone_call_type_id=row.phone_call_type_id,
        notify_list=tuple(row.notify_list or ()),
    )
