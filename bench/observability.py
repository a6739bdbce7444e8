"""What metrics and traces cost the accept path: process CPU per `POST /v1/tasks`, in one process.

    python bench/observability.py [--requests 1000] [--rounds 9]

Three runtimes of the service run side by side in this process, without workers, each on its own
SQLite file: everything off; metrics on; metrics and traces on, exporting by OTLP/HTTP to a receiver
in a child process. Each round posts `--requests` tasks through each one's ASGI app (httpx's ASGI
transport, 32 at a time; the client's CPU is in the figure too), the three interleaved so that a
busy machine disturbs them alike, and measures process CPU per request (µs; the traced round
includes flushing its spans through the exporter). The median of the rounds is the result. Then:
the CPU of the per-request middleware and counters alone, and of one scrape of `/metrics` (the
database's counts included) with all those tasks in the database.
"""

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from typing import Any

import harness  # bench/harness.py: free ports, the task body, the answering receiver
import httpx

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.config import Settings
from emrtasks.observability import asgi, metrics
from emrtasks.service import admin

MODES = ("off", "metrics", "metrics+traces")


def settings_for(mode: str, sink_port: int) -> Settings:
    workdir = tempfile.mkdtemp(prefix="emrtasks-observability-")
    return Settings(
        database_url=f"sqlite+aiosqlite:///{workdir}/emrtasks.db",
        key_file=f"{workdir}/emrtasks.key",
        log_level="ERROR",
        rate_limit_client_per_second=0,
        rate_limit_connection_per_second=0,
        metrics_address=f"127.0.0.1:{harness.free_port()}" if mode != "off" else None,
        otlp_endpoint=f"http://127.0.0.1:{sink_port}" if mode == "metrics+traces" else None,
        _env_file=None,  # type: ignore[call-arg]
    )


async def start(stack: contextlib.AsyncExitStack, settings: Settings) -> tuple[Any, httpx.AsyncClient, dict]:
    rt = await stack.enter_async_context(bootstrap.runtime(settings, run_worker=False, observe=True))
    client = await admin.create_client(rt.ctx, "bench")
    connection = await admin.create_connection(
        rt.ctx,
        client_id=client.client_id,
        emr="sandbox",
        rules="subject_assignee",
        reference_id="b",
        settings={"latency_ms": 0},
    )
    headers = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "access_token": connection.access_token,
    }
    app = create_app(rt.ctx, telemetry=rt.telemetry)
    http = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    )
    return rt, http, headers


async def run(args: argparse.Namespace, sink_port: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        started = {mode: await start(stack, settings_for(mode, sink_port)) for mode in MODES}
        for _rt, http, headers in started.values():
            await _post(http, headers, 200)  # warm-up: caches, pools, compiled statements
        rounds: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode, (rt, http, headers) in started.items():
                cpu = time.process_time()
                await _post(http, headers, args.requests)
                if rt.telemetry is not None and rt.telemetry.tracing is not None:
                    await asyncio.to_thread(rt.telemetry.tracing.provider.force_flush)
                rounds[mode].append((time.process_time() - cpu) * 1e6 / args.requests)
        medians = {mode: statistics.median(values) for mode, values in rounds.items()}
        for mode, values in rounds.items():
            shown = " ".join(f"{value:.0f}" for value in values)
            print(f"{mode:>15}: {medians[mode]:.0f} µs CPU per accepted task (rounds: {shown})")
        for mode in MODES[1:]:
            print(f"{mode:>15}: {(medians[mode] / medians['off'] - 1) * 100:+.1f} % against off")
        rt = started["metrics"][0]
        cpu = time.process_time()
        await rt.telemetry.metrics.exposition()
        tasks = (args.rounds * args.requests) + 200
        spent = (time.process_time() - cpu) * 1000
        print(f"one scrape of /metrics, {tasks} tasks in the database: {spent:.1f} ms CPU")
    print(f"the request middleware and its counters alone: {await middleware_cost():.1f} µs CPU per request")


async def middleware_cost(n: int = 100_000) -> float:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(_message: Any = None) -> Any:
        return {}

    bare, observed = app, asgi.Observe(app, metrics=metrics.Metrics(None, disable_after_seconds=1))  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "headers": []}
    costs = []
    for handler in (bare, observed):
        cpu = time.process_time()
        for _ in range(n):
            await handler(scope, ignore, ignore)
        costs.append((time.process_time() - cpu) * 1e6 / n)
    return costs[1] - costs[0]


async def _post(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    gate = asyncio.Semaphore(32)

    async def one() -> None:
        async with gate:
            answer = await http.post("/v1/tasks", json=harness.TASK_BODY, headers=headers)
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(one() for _ in range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with harness.answering_receiver() as sink_port:
        asyncio.run(run(args, sink_port))


if __name__ == "__main__":
    main()
