"""Task records: the accepted request, its status and the EMR's answer. Always read within a connection."""

from datetime import datetime
from typing import Any

from sqlalchemy import select

from emrtasks.domain import tasks as domain_tasks
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import tasks


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


# Built once, bound at each execution (the hot path: see jobs.py).


async def get_task(
    conn: DbConnection, task_id: str, connection_id: str | None = None
) -> dict[str, Any] | None:
    query = select(tasks).where(tasks.c.id == task_id)
    if connection_id is not None:
        query = query.where(tasks.c.connection_id == connection_id)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


def to_request(row: dict[str, Any]) -> domain_tasks.TaskRequest:
    return domain_tasks.TaskRequest(
        description=row["description"],
        patient_mrn=row["patient_mrn"],
        subject=row["subject"],
        assignee_user_id=row["assignee_user_id"],
        phone_call_type_id=row["phone_call_type_id"],
        notify_list=tuple(row["notify_list"] or ()),
    )
