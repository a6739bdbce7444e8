"""Metrics, traces and JSON logs from real processes: `serve --no-worker` and a separate `worker`,
scraped and traced over loopback, their figures checked against the database."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from emrtasks.storage import db, tables
from tests.e2e.conftest import free_port
from tests.otlp_receiver import OtlpReceiver
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e

TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}
UNKNOWN_PATIENT = {**TASK, "patient_mrn": "MRN-4040"}
HOOKS = {
    "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
    "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
    "EMRTASKS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2",
    "EMRTASKS_WORKER_POLL_SECONDS": "0.1",
}


class Process:
    """One `emrtasks` command running in the background, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emrtasks.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{what} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def processes(service, tmp_path):
    """Start `serve --no-worker` and `worker` with extra settings each; all stopped at the end."""
    started: list[Process] = []

    def start(serve_env: dict[str, str], worker_env: dict[str, str]) -> tuple[Process, Process]:
        serve = Process(
            "serve",
            ["serve", "--no-worker", "--port", str(service.port)],
            {**service.env, **serve_env},
            tmp_path,
        )
        started.append(serve)
        serve.wait_until(lambda: httpx.get(f"{service.url}/healthz").status_code == 200, "serve")
        worker = Process("worker", ["worker"], {**service.env, **worker_env}, tmp_path)
        started.append(worker)
        worker.wait_until(lambda: "started (concurrency" in worker.log(), "worker")
        return serve, worker

    yield start
    for process in started:
        process.stop()


def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def from_database(url: str, *columns) -> dict[tuple, int]:
    async def read() -> dict[tuple, int]:
        engine = db.create_engine(url)
        try:
            async with engine.connect() as conn:
                rows = (await conn.execute(select(*columns, func.count()).group_by(*columns))).all()
        finally:
            await engine.dispose()
        return {tuple(row[:-1]): row[-1] for row in rows}

    return asyncio.run(read())


def register(http: httpx.Client, client: dict[str, str], receiver: Receiver) -> None:
    headers = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    assert http.post("/v1/webhook", json={"webhook_url": receiver.url}, headers=headers).status_code == 201


def wait_until_settled(address: str) -> dict:
    """The scrape once no task is processing and no job is queued or running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples = scrape(address)
        busy = sum(
            v
            for (name, labels), v in samples.items()
            if name == "emrtasks_jobs" and dict(labels)["state"] in ("queued", "running")
        )
        if (
            not busy
            and not value(samples, "emrtasks_tasks", status="processing")
            and value(samples, "emrtasks_tasks", status="created")
        ):
            return samples
        time.sleep(0.1)
    raise AssertionError("the jobs never settled")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_scraped_counters_of_serve_and_a_separate_worker_agree_with_the_database(service, processes, db_url):
    serve_metrics, worker_metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    client = service.connect("sandbox", {}, name="metrics")
    with Receiver() as receiver:
        receiver.answers = [500]  # one event's first attempt fails; its retry is delivered
        processes(
            {**HOOKS, "EMRTASKS_METRICS_ADDRESS": serve_metrics},
            {**HOOKS, "EMRTASKS_METRICS_ADDRESS": worker_metrics},
        )
        with httpx.Client(base_url=service.url, timeout=10) as http:
            register(http, client, receiver)
            for body in [TASK] * 4 + [UNKNOWN_PATIENT] * 2:
                assert http.post("/v1/tasks", json=body, headers=client).status_code == 202
            assert http.post("/v1/tasks", json=TASK, headers={"client_id": "nobody"}).status_code == 401
        wait_until_settled(serve_metrics)
    api, work = scrape(serve_metrics), scrape(worker_metrics)

    assert value(api, "emrtasks_http_requests_total", method="POST", route="/v1/tasks", status="202") == 6
    assert value(api, "emrtasks_http_requests_total", method="POST", route="/v1/tasks", status="401") == 1
    assert (
        value(api, "emrtasks_emr_calls_total", emr="sandbox", operation="create_task", outcome="created") == 0
    )

    tasks = from_database(db_url, tables.tasks.c.status)
    assert tasks == {("created",): 4, ("failed",): 2}
    assert (
        value(work, "emrtasks_emr_calls_total", emr="sandbox", operation="create_task", outcome="created")
        == 4
    )
    assert (
        value(work, "emrtasks_emr_calls_total", emr="sandbox", operation="search_patients", outcome="ok") == 6
    )

    attempts = from_database(db_url, tables.delivery_attempts.c.status_code)
    assert value(work, "emrtasks_webhook_attempts_total", outcome="delivered") == attempts[(200,)] == 6
    assert value(work, "emrtasks_webhook_attempts_total", outcome="failed") == attempts[(500,)] == 1

    for samples in (api, work):  # read from the database: the same in every process
        for (status,), count in tasks.items():
            assert value(samples, "emrtasks_tasks", status=status) == count
        for (kind, state), count in from_database(db_url, tables.jobs.c.kind, tables.jobs.c.state).items():
            assert value(samples, "emrtasks_jobs", kind=kind, state=state) == count
        assert value(samples, "emrtasks_jobs_oldest_due_age_seconds", kind="create_task") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_one_trace_follows_a_task_from_serve_into_a_separate_worker(service, processes):
    client = service.connect("sandbox", {}, name="traces")
    with OtlpReceiver() as otlp, Receiver() as receiver:
        traced = {
            **HOOKS,
            "EMRTASKS_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "EMRTASKS_LOG_FORMAT": "json",
        }
        serve, worker = processes(traced, traced)
        with httpx.Client(base_url=service.url, timeout=10) as http:
            register(http, client, receiver)
            accepted = http.post("/v1/tasks", json=TASK, headers=client).json()
            deadline = time.monotonic() + 30
            while not receiver.deliveries and time.monotonic() < deadline:
                time.sleep(0.05)
        assert receiver.deliveries, worker.log()
        serve.stop()
        worker.stop()  # both export what they still hold as they stop
    server = next(span for span in otlp.spans if span.name == "POST /v1/tasks")
    trace = [span for span in otlp.spans if span.trace_id == server.trace_id]
    names = {span.name for span in trace}
    assert {
        "job create_task",
        "emr search_patients",
        "emr create_task",
        "job deliver_webhook",
        "webhook attempt",
        "POST",
    } <= names
    pids = {span.name: span.resource["process.pid"] for span in trace}
    assert pids["POST /v1/tasks"] == serve.process.pid
    assert pids["job create_task"] == pids["job deliver_webhook"] == worker.process.pid
    spans = {span.span_id: span for span in trace}
    job = next(span for span in trace if span.name == "job create_task")
    assert job.parent_span_id == server.span_id
    assert job.attributes["task.id"] == accepted["task_id"] and job.attributes["job.id"] == accepted["job_id"]
    delivery = next(span for span in trace if span.name == "job deliver_webhook")
    assert spans[delivery.parent_span_id].name == "job create_task"
    assert "MRN-1001" not in repr(otlp.spans) and "lab results" not in repr(otlp.spans)

    lines = [json.loads(line) for line in serve.log().splitlines() if line.strip()]
    access = next(line for line in lines if "POST /v1/tasks" in line["message"])
    assert access["task_id"] == accepted["task_id"] and access["job_id"] == accepted["job_id"]
    assert access["client_id"] == client["client_id"] and access["connection_id"].startswith("conn_")
    assert access["request_id"] and access["trace_id"] == server.trace_id
    assert "MRN-1001" not in serve.log() + worker.log()
    for line in worker.log().splitlines():
        json.loads(line)  # every line of the worker is JSON too
