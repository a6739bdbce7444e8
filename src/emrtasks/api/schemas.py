"""The public contract's shapes, for OpenAPI. Routes build their bodies directly; these document them."""

from typing import Any

from pydantic import BaseModel, Field


class FieldErrorBody(BaseModel):
    field: str | None = Field(description="The field at fault, e.g. `subject` or `notify_list[1]`.")
    code: str = Field(description="missing_field, invalid_type, unexpected_field, too_long, ...")
    message: str


class ErrorBody(BaseModel):
    success: bool = False
    error: str = Field(description="Machine code, e.g. missing_field, user_not_found, unauthorized.")
    message: str = Field(description="Human text, e.g. `Missing required field: subject`.")
    errors: list[FieldErrorBody] | None = Field(default=None, description="Every field at fault.")


class CreateTaskRequest(BaseModel):
    description: str = Field(description="Task description/body content. Always required.")
    patient_mrn: str = Field(description="Medical Record Number of the patient. Always required.")
    subject: str | None = Field(default=None, description="Conditionally required.")
    assignee_user_id: str | None = Field(default=None, description="Conditionally required.")
    phone_call_type_id: str | None = Field(default=None, description="Conditionally required.")
    notify_list: list[str] | None = Field(default=None, description="User ids to notify.")


class Accepted(BaseModel):
    success: bool = True
    message: str = "Task processing. A webhook event will be sent upon completion."
    task_id: str
    job_id: str


class Reason(BaseModel):
    code: str
    description: str


class Task(BaseModel):
    task_id: str
    job_id: str
    status: str = Field(description="processing, created, failed or unknown")
    subject: str | None
    description: str
    patient_mrn: str
    assignee_user_id: str | None
    phone_call_type_id: str | None
    notify_list: list[str]
    emr_task_id: str | None
    failure_reason: str | None
    reasons: list[Reason]
    created: str
    updated: str


class TaskResponse(BaseModel):
    success: bool = True
    task: Task


class Job(BaseModel):
    job_id: str
    kind: str
    task_id: str | None
    state: str = Field(description="queued, running, succeeded, failed or unknown")
    attempts: int
    max_attempts: int
    next_attempt_at: str | None
    last_error_code: str | None
    last_error: str | None
    created: str
    updated: str
    finished: str | None


class JobResponse(BaseModel):
    success: bool = True
    job: Job


class RequirementsResponse(BaseModel):
    success: bool = True
    requirements: dict[str, Any]


class User(BaseModel):
    id: str
    name: str
    kind: str = Field(description="provider, staff or group")


class UsersResponse(BaseModel):
    success: bool = True
    users: list[User]


class CallType(BaseModel):
    id: str
    name: str


class CallTypesResponse(BaseModel):
    success: bool = True
    phone_call_types: list[CallType]


class Pagination(BaseModel):
    current_page: int
    total_pages: int
    total_count: int
    page_size: int


class Patient(BaseModel):
    first_name: str
    last_name: str
    dob: str
    sex: str
    phone: str
    mrn: str


class PatientsResponse(BaseModel):
    success: bool = True
    patients: list[Patient]
    pagination: Pagination


class SettingsResponse(BaseModel):
    success: bool = True
    data: dict[str, Any]


class SettingsUpdate(BaseModel):
    access_token_reference_id: str


class Event(BaseModel):
    id: str
    access_token_reference_id: str | None
    object: str = "event"
    created: str
    type: str
    job_id: str | None
    data: dict[str, Any]


class EventsResponse(BaseModel):
    success: bool = True
    webhook_events: list[Event]
    pagination: Pagination


class EmrTasksResponse(BaseModel):
    success: bool = True
    emr_tasks: list[dict[str, Any]]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries with the error body for each status."""
    return {status: {"model": ErrorBody} for status in statuses}
