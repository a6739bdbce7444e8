"""Observability's pure parts: JSON log lines with the ids in context, route labels, addresses, the
outcome labels of EMR calls, and the settings that turn it on."""

import asyncio
import json
import logging
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from emrtasks.config import Settings
from emrtasks.domain import outcomes
from emrtasks.observability import asgi, logs, server
from emrtasks.service import telemetry


def _record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("emrtasks.test", logging.WARNING, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_a_json_line_carries_the_ids_set_in_its_context_and_only_those():
    def inside() -> str:
        logs.REQUEST_ID.set("req-1")
        logs.CLIENT_ID.set("cli_1")
        logs.TASK_ID.set("task_1")
        return logs.JsonFormatter().format(_record("accepted %d", 1))

    line = json.loads(asyncio.run(_in_task(inside)))
    assert line["message"] == "accepted 1"
    assert line["level"] == "WARNING" and line["logger"] == "emrtasks.test"
    assert (line["request_id"], line["client_id"], line["task_id"]) == ("req-1", "cli_1", "task_1")
    assert "connection_id" not in line and "job_id" not in line
    outside = json.loads(logs.JsonFormatter().format(_record("idle")))
    assert "request_id" not in outside  # the request's task ended: its ids went with it


async def _in_task(function):
    return await asyncio.create_task(asyncio.to_thread(function))


def test_a_json_line_names_an_exception_and_its_traceback_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        line = logs.JsonFormatter().format(_record("failed", exc_info=sys.exc_info()))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["error"] == "ValueError" and "Traceback" in parsed["traceback"]


def test_a_json_line_carries_the_trace_ids_it_is_given():
    line = json.loads(logs.JsonFormatter(lambda: ("a" * 32, "b" * 16)).format(_record("x")))
    assert (line["trace_id"], line["span_id"]) == ("a" * 32, "b" * 16)


async def test_a_job_handler_logs_under_its_job_task_and_connection():
    seen = {}

    async def handler(job: object) -> None:
        seen.update(job=logs.JOB_ID.get(), task=logs.TASK_ID.get(), connection=logs.CONNECTION_ID.get())

    class Job:
        id, task_id, connection_id = "job_1", "task_1", "con_1"

    await asyncio.create_task(logs.with_job_context(handler)(Job()))
    assert seen == {"job": "job_1", "task": "task_1", "connection": "con_1"}
    assert logs.JOB_ID.get() is None


def test_the_route_label_is_the_template_or_unmatched_never_the_path():
    class Route:
        path = "/v1/tasks/{task_id}"

    assert asgi.route_of({"route": Route(), "path": "/v1/tasks/task_123"}) == "/v1/tasks/{task_id}"
    assert asgi.route_of({"path": "/MRN-1001"}) == asgi.UNMATCHED


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), (":9464", ("0.0.0.0", 9464))],
)
def test_a_metrics_address_is_host_and_port(address, expected):
    assert server.parse_address(address) == expected


@pytest.mark.parametrize("address", ["9464", "localhost", "host:http", "host:70000"])
def test_a_metrics_address_without_a_port_is_refused_at_start(address):
    with pytest.raises(ValidationError, match="metrics_address"):
        Settings(metrics_address=address, _env_file=None)  # type: ignore[call-arg]


def test_the_otlp_endpoint_must_be_an_http_url_and_the_standard_variable_is_read(monkeypatch):
    monkeypatch.setenv("EMRTASKS_OTLP_ENDPOINT", "collector:4317")
    with pytest.raises(ValidationError, match="OTLP"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.delenv("EMRTASKS_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert Settings(_env_file=None).otlp_endpoint == "http://127.0.0.1:4318"  # type: ignore[call-arg]
    monkeypatch.setenv("EMRTASKS_OTLP_ENDPOINT", "http://127.0.0.1:4319")
    assert Settings(_env_file=None).otlp_endpoint == "http://127.0.0.1:4319"  # type: ignore[call-arg]


def test_everything_is_off_unless_asked():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.metrics_address, settings.otlp_endpoint, settings.log_format) == (None, None, "text")


@pytest.mark.parametrize(
    ("result", "label"),
    [
        (outcomes.Created("t1"), "created"),
        (outcomes.Rejected(outcomes.PATIENT_NOT_FOUND, "MRN-1001 not found"), "rejected"),
        (outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, "down"), "retry_later"),
        (outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, "?"), "unknown"),
        (outcomes.Absent(), "absent"),
        ([], "ok"),
    ],
)
def test_an_emr_calls_outcome_label_is_its_kind_never_its_text(result, label):
    assert telemetry.outcome_of(result) == label


def test_an_adapter_is_left_as_it_is_when_nothing_observes():
    adapter = object()
    assert telemetry.observed(adapter, "sandbox", telemetry.NONE) is adapter  # type: ignore[arg-type]


def test_with_traces_off_opentelemetry_is_never_loaded(tmp_path):
    """Off costs nothing: the API, bootstrap and the worker's handlers load no OpenTelemetry module."""
    script = (
        "import sys, emrtasks.bootstrap, emrtasks.api.app, emrtasks.cli\n"
        "from emrtasks.config import Settings\n"
        "s = Settings(_env_file=None, metrics_address='127.0.0.1:1')\n"
        "t = emrtasks.bootstrap.build_telemetry(s, None)\n"
        "assert t is not None and t.tracing is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMRTASKS_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
