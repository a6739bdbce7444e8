"""Log formatting: `EMRTASKS_LOG_FORMAT=json` writes one JSON object per line, with the request, client,
connection, task and job of the line where known (kept in context variables as a request or a job
runs). The messages are the service's own, which never carry patient data; neither does this."""

import contextvars
import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("emrtasks_request_id", default=None)
CLIENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("emrtasks_client_id", default=None)
CONNECTION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "emrtasks_connection_id", default=None
)
TASK_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("emrtasks_task_id", default=None)
JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("emrtasks_job_id", default=None)

_FIELDS = (
    ("request_id", REQUEST_ID),
    ("client_id", CLIENT_ID),
    ("connection_id", CONNECTION_ID),
    ("task_id", TASK_ID),
    ("job_id", JOB_ID),
)
TraceIds = Callable[[], tuple[str, str] | None]


class JsonFormatter(logging.Formatter):
    """One object per line: time, level, logger, message, the ids known, trace and span ids when traced."""

    def __init__(self, trace_ids: TraceIds | None = None) -> None:
        super().__init__()
        self._trace_ids = trace_ids

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in _FIELDS:
            value = variable.get()
            if value is not None:
                line[name] = value
        ids = self._trace_ids() if self._trace_ids else None
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, ensure_ascii=False, default=str)


def with_job_context(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """A job handler whose log lines name the job, its task and its connection."""

    async def run(job: Any) -> None:
        # Each job runs in its own asyncio task (a copy of the context): these end with it.
        JOB_ID.set(job.id)
        TASK_ID.set(job.task_id)
        CONNECTION_ID.set(job.connection_id)
        await handler(job)

    return run
