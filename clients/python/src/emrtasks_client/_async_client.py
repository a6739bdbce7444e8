"""`AsyncClient`: the asynchronous client, on `httpx.AsyncClient`; the same calls as `Client`, awaited."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import httpx

from emrtasks_client import _base, _calls, _exceptions, _models, _retry

T = TypeVar("T")


class AsyncClient:
    """`Client`'s asynchronous twin: the same arguments (`sleep` is awaited) and the same calls,
    awaited; `iter_events` is an async iterator. Use it as `async with AsyncClient(...) as client`."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        access_token: str | None = None,
        *,
        timeout: float | httpx.Timeout = _base.DEFAULT_TIMEOUT,
        retry: _retry.RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] | None = None,
    ) -> None:
        headers = _base.auth_headers(client_id, client_secret, access_token)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._retry = _base.RetryState(retry or _retry.RetryPolicy(), random)
        self._sleep = sleep
        self._monotonic = monotonic

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_task(
        self,
        *,
        description: str,
        patient_mrn: str,
        subject: str | None = None,
        assignee_user_id: str | None = None,
        phone_call_type_id: str | None = None,
        notify_list: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> _models.TaskAccepted:
        """`POST /v1/tasks`. Every try carries the same `Idempotency-Key` (yours, or a new uuid4), so
        a retry never creates a second task; the key is on the result to send again later."""
        call = _calls.create_task(
            description=description,
            patient_mrn=patient_mrn,
            subject=subject,
            assignee_user_id=assignee_user_id,
            phone_call_type_id=phone_call_type_id,
            notify_list=notify_list,
            key=idempotency_key,
        )
        return await self._send(call)

    async def get_task(self, task_id: str) -> _models.Task:
        return await self._send(_calls.get_task(task_id))

    async def get_job(self, job_id: str) -> _models.Job:
        return await self._send(_calls.get_job(job_id))

    # The same signature as Client's: the deadline is kept here, between polls.
    async def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109
        poll_interval: float = 0.5,
    ) -> _models.Task:
        """Poll the task until its status is final (created, failed, unknown); `Timeout` after `timeout` s."""
        _base.check_wait(timeout, poll_interval)
        deadline = self._monotonic() + timeout
        while True:
            task = await self.get_task(task_id)
            if task.is_final:
                return task
            if self._monotonic() + poll_interval > deadline:
                raise _exceptions.Timeout(f"task {task_id} still {task.status} after {timeout} s")
            await self._sleep(poll_interval)

    async def get_requirements(self) -> _models.Requirements:
        return await self._send(_calls.get_requirements())

    async def list_users(self) -> tuple[_models.User, ...]:
        return await self._send(_calls.list_users())

    async def list_call_types(self) -> tuple[_models.CallType, ...]:
        return await self._send(_calls.list_call_types())

    async def list_patients(
        self, mrn: str | None = None, *, page: int = 1, page_size: int = 50
    ) -> _models.Page[_models.Patient]:
        return await self._send(_calls.list_patients(mrn, page, page_size))

    async def list_events(
        self,
        *,
        job_id: str | None = None,
        event_type: str | None = None,
        page: int = 1,
        page_size: int = 50,
        sort: str = "-created_at",
    ) -> _models.Page[_models.Event]:
        """One page of `GET /v1/webhook-events` (newest first unless `sort="created_at"`)."""
        _base.check_sort(sort)
        call = _calls.list_events(
            job_id=job_id, event_type=event_type, page=page, page_size=page_size, sort=sort
        )
        return await self._send(call)

    async def iter_events(
        self,
        *,
        job_id: str | None = None,
        event_type: str | None = None,
        page_size: int = 100,
        sort: str = "created_at",
    ) -> AsyncIterator[_models.Event]:
        """Every event, page after page until the last. Oldest first by default: events written
        meanwhile then join the end instead of shifting the pages still to come."""
        page = 1
        while True:
            found = await self.list_events(
                job_id=job_id, event_type=event_type, page=page, page_size=page_size, sort=sort
            )
            for event in found.items:
                yield event
            if not found.has_next or not found.items:
                return
            page += 1

    async def register_webhook(self, url: str) -> _models.WebhookEndpoint:
        """`POST /v1/webhook`; the answer's `secret` (`whsec_...`) is shown this once: keep it."""
        return await self._send(_calls.register_webhook(url))

    async def list_webhooks(self) -> tuple[_models.WebhookEndpoint, ...]:
        return await self._send(_calls.list_webhooks())

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._send(_calls.delete_webhook(webhook_id))

    async def _send(self, call: _calls.Call[T]) -> T:
        tries = 0
        while True:
            tries += 1
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.body, headers=call.headers
                )
            except httpx.TransportError as error:
                delay = self._retry.after_error(call.retry, tries, error)
                if delay is None:
                    raise _exceptions.TransportError(f"{call.method} {call.path}: {error!r}") from error
            else:
                delay = self._retry.after_answer(call.retry, tries, response)
                if delay is None:
                    return call.read(response)
            await self._sleep(delay)
