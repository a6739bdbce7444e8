"""The load generator: a process of its own (the harness pins it to a core), speaking raw HTTP/1.1.

    python bench/loadgen.py '{"mode": "closed", "port": 8000, ...}'

It reads one JSON spec (its argument, or stdin), runs it and writes one JSON result on stdout.
Requests are encoded once (see httpraw.py) and sent over keep-alive connections to 127.0.0.1 only.
Modes:

- `closed`: `concurrency` connections each sending back to back for `warmup_s` + `duration_s`;
  throughput and latency of the requests that complete in the measured window.
- `drain`: `n` tasks as fast as `concurrency` connections allow, then the time until the receiver
  has verified all n webhooks (drained-backlog throughput).
- `open`: `rate` tasks/s for `duration_s` on a fixed schedule, never waiting for answers (a pool of
  connections grows as needed), then accept-to-webhook latency, measured from each request's
  scheduled send time so that a slow server cannot hide its queueing (no coordinated omission).
- `idle`: `samples` single tasks, each after `pause_s` of silence: send-to-webhook latency.

Webhook times come from the receiver (bench/receiver.py); both processes read CLOCK_MONOTONIC, which
is shared by the whole machine. Every result reports the generator's own CPU use (CPU seconds over
wall seconds of its busy part) so that a reader can check it was not the bottleneck.
"""

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from httpraw import Connection, ProtocolError, call, encode_request

REQUEST_TIMEOUT = 30.0
_FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ProtocolError)


def summary_ms(durations_ns: list[int]) -> dict[str, float | int]:
    """n, mean, p50, p95, p99 and max of durations given in ns, in ms (nearest-rank percentiles)."""
    if not durations_ns:
        return {"n": 0}
    ordered = sorted(durations_ns)
    count = len(ordered)

    def rank(q: float) -> float:
        index = min(count - 1, max(0, int(q * count + 0.999999) - 1))
        return round(ordered[index] / 1e6, 3)

    return {
        "n": count,
        "mean": round(sum(ordered) / count / 1e6, 3),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1] / 1e6, 3),
    }


class CpuMeter:
    """This process's CPU seconds over wall seconds between start() and stop()."""

    def start(self) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.monotonic()

    def stop(self) -> dict[str, float]:
        cpu, wall = time.process_time() - self.cpu0, time.monotonic() - self.wall0
        return {"cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3), "util": round(cpu / wall, 3)}


class Pool:
    """Keep-alive connections to one port, opened on demand up to `limit`."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.opened = 0
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()

    async def fill(self, count: int) -> None:
        count = min(count, self.limit - self.opened)
        self.opened += count
        for connection in await asyncio.gather(*(Connection.open(self.port) for _ in range(count))):
            self.idle.put_nowait(connection)

    async def acquire(self) -> Connection:
        try:
            return self.idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self.opened < self.limit:
            self.opened += 1
            try:
                return await Connection.open(self.port)
            except BaseException:
                self.opened -= 1
                raise
        return await self.idle.get()

    def release(self, connection: Connection) -> None:
        self.idle.put_nowait(connection)

    def discard(self, connection: Connection) -> None:
        connection.close()
        self.opened -= 1

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait().close()


def task_request(spec: dict[str, Any]) -> bytes:
    return encode_request("POST", spec["path"], spec["port"], spec["headers"], spec["body"].encode())


def task_id_of(body: bytes) -> str:
    return str(json.loads(body)["task_id"])


# -- closed loop: fixed concurrency, back to back ---------------------------------------------------------


async def closed(spec: dict[str, Any]) -> dict[str, Any]:
    port, raw = spec["port"], task_request(spec)
    pool = Pool(port, spec["concurrency"])
    await pool.fill(spec["concurrency"])
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    counts = {"errors": 0, "accepted": 0, "sent": 0}
    meter = CpuMeter()
    meter.start()
    begin = time.monotonic_ns()
    measure_from = begin + int(spec["warmup_s"] * 1e9)
    end = measure_from + int(spec["duration_s"] * 1e9)

    async def client() -> None:
        connection = await pool.acquire()
        while (started := time.monotonic_ns()) < end:
            counts["sent"] += 1
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, _body = await connection.request(raw)
            except _FAILURES:
                counts["errors"] += 1
                pool.discard(connection)
                try:
                    connection = await pool.acquire()
                except _FAILURES:
                    return
                continue
            done = time.monotonic_ns()
            if 200 <= status < 300:
                counts["accepted"] += 1
            if measure_from <= done < end:
                statuses[status] += 1
                if 200 <= status < 300:
                    latencies.append(done - started)
        pool.release(connection)

    await asyncio.gather(*(client() for _ in range(spec["concurrency"])))
    cpu = meter.stop()
    pool.close()
    return {
        "mode": "closed",
        "path": spec["path"],
        "concurrency": spec["concurrency"],
        "duration_s": spec["duration_s"],
        "rps": round(len(latencies) / spec["duration_s"], 1),
        "latency_ms": summary_ms(latencies),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "errors": counts["errors"],
        "sent_total": counts["sent"],
        "accepted_total": counts["accepted"],
        "generator_cpu": cpu,
    }


# -- webhooks at the receiver --------------------------------------------------------------------------------


async def reset_receiver(receiver_port: int) -> None:
    await call(receiver_port, "POST", "/_bench/reset")


async def collect_webhooks(
    receiver_port: int, task_ids: list[str], grace_s: float
) -> tuple[dict[str, list[Any]], bool]:
    """Wait (at most grace_s) until every task's webhook is verified; the receiver's records."""
    await call(receiver_port, "POST", "/_bench/expect", json.dumps(task_ids).encode())
    waited = json.loads(
        await call(receiver_port, "GET", f"/_bench/wait?timeout={grace_s}", limit_s=grace_s + 30)
    )
    records = json.loads(await call(receiver_port, "GET", "/_bench/records"))
    return records, bool(waited["complete"])


def e2e_outcome(
    sends: list[tuple[int, int, int, int, str | None]], records: dict[str, list[Any]]
) -> dict[str, Any]:
    """From (scheduled, sent, answered, status, task id) per request and the receiver's records."""
    accepted = [entry for entry in sends if entry[4] is not None]
    delivered = [(entry, records[entry[4]]) for entry in accepted if entry[4] in records]
    webhook_times = [record[0] for _entry, record in delivered]
    types = Counter(record[2] for _entry, record in delivered)
    return {
        "offered": len(sends),
        "accepted": len(accepted),
        "refused_or_failed": len(sends) - len(accepted),
        "statuses": {
            str(code): count for code, count in sorted(Counter(entry[3] for entry in sends).items())
        },
        "delivered": len(delivered),
        "undelivered": len(accepted) - len(delivered),
        "retried_deliveries": sum(1 for _entry, record in delivered if record[1] > 1),
        "event_types": dict(types),
        "accept_latency_ms": summary_ms([entry[2] - entry[1] for entry in accepted]),
        "send_lateness_ms": summary_ms([entry[1] - entry[0] for entry in sends]),
        "e2e_latency_ms": summary_ms([record[0] - entry[0] for entry, record in delivered]),
        "first_send_ns": min((entry[1] for entry in sends), default=0),
        "last_send_ns": max((entry[1] for entry in sends), default=0),
        "last_answer_ns": max((entry[2] for entry in sends), default=0),
        "last_webhook_ns": max(webhook_times, default=0),
    }


# -- drained backlog ---------------------------------------------------------------------------------------


async def drain(spec: dict[str, Any]) -> dict[str, Any]:
    port, raw, n = spec["port"], task_request(spec), spec["n"]
    await reset_receiver(spec["receiver_port"])
    pool = Pool(port, spec["concurrency"])
    await pool.fill(spec["concurrency"])
    sends: list[tuple[int, int, int, int, str | None]] = []
    errors = issued = 0
    refusals: list[str] = []
    meter = CpuMeter()
    meter.start()

    async def client() -> None:
        nonlocal errors, issued
        connection = await pool.acquire()
        while issued < n:
            issued += 1
            sent = time.monotonic_ns()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, body = await connection.request(raw)
            except _FAILURES:
                errors += 1
                pool.discard(connection)
                try:
                    connection = await pool.acquire()
                except _FAILURES:
                    return
                continue
            task_id = task_id_of(body) if status == 202 else None
            if status != 202 and not refusals:
                refusals.append(body[:300].decode(errors="replace"))
            sends.append((sent, sent, time.monotonic_ns(), status, task_id))
        pool.release(connection)

    await asyncio.gather(*(client() for _ in range(spec["concurrency"])))
    cpu = meter.stop()
    pool.close()
    task_ids = [entry[4] for entry in sends if entry[4] is not None]
    records, complete = await collect_webhooks(spec["receiver_port"], task_ids, spec["grace_s"])
    outcome = e2e_outcome(sends, records)
    outcome["refused_or_failed"] += errors
    elapsed = (outcome["last_webhook_ns"] - outcome["first_send_ns"]) / 1e9
    submit = (outcome["last_answer_ns"] - outcome["first_send_ns"]) / 1e9
    return {
        "mode": "drain",
        "n": n,
        "concurrency": spec["concurrency"],
        "complete": complete and outcome["undelivered"] == 0 and outcome["refused_or_failed"] == 0,
        "seconds_to_last_webhook": round(elapsed, 3),
        "tasks_per_s": round(outcome["delivered"] / elapsed, 1) if elapsed > 0 else 0.0,
        "submit_seconds": round(submit, 3),
        "accepts_per_s": round(outcome["accepted"] / submit, 1) if submit > 0 else 0.0,
        "errors": errors,
        "first_refusal": refusals[0] if refusals else None,
        **{key: value for key, value in outcome.items() if not key.endswith("_ns")},
        "generator_cpu": cpu,
    }


# -- open loop at a fixed rate ------------------------------------------------------------------------------


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    port, raw, rate = spec["port"], task_request(spec), float(spec["rate"])
    count = round(rate * spec["duration_s"])
    await reset_receiver(spec["receiver_port"])
    pool = Pool(port, spec.get("max_connections", 512))
    await pool.fill(min(32, pool.limit))
    sends: list[tuple[int, int, int, int, str | None]] = []
    refusals: list[str] = []
    errors = 0

    async def send(scheduled: int) -> None:
        nonlocal errors
        connection: Connection | None = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                connection = await pool.acquire()
                sent = time.monotonic_ns()
                status, body = await connection.request(raw)
        except _FAILURES:
            errors += 1
            sends.append((scheduled, scheduled, time.monotonic_ns(), 0, None))
            if connection is not None:
                pool.discard(connection)
            return
        answered = time.monotonic_ns()
        pool.release(connection)
        if status != 202 and not refusals:
            refusals.append(body[:300].decode(errors="replace"))
        sends.append((scheduled, sent, answered, status, task_id_of(body) if status == 202 else None))

    meter = CpuMeter()
    meter.start()
    interval = 1e9 / rate
    start = time.monotonic_ns() + 20_000_000
    running: set[asyncio.Task[None]] = set()
    index = 0
    while index < count:
        now = time.monotonic_ns()
        due = start + int(index * interval)
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            continue
        while index < count and (due := start + int(index * interval)) <= now:
            task = asyncio.create_task(send(due))
            running.add(task)
            task.add_done_callback(running.discard)
            index += 1
    if running:
        await asyncio.wait(running, timeout=REQUEST_TIMEOUT + 5)
    cpu = meter.stop()
    pool.close()
    task_ids = [entry[4] for entry in sends if entry[4] is not None]
    records, complete = await collect_webhooks(spec["receiver_port"], task_ids, spec["grace_s"])
    outcome = e2e_outcome(sends, records)
    span = (outcome["last_webhook_ns"] - start) / 1e9
    return {
        "mode": "open",
        "rate": rate,
        "duration_s": spec["duration_s"],
        "complete": complete and outcome["undelivered"] == 0 and outcome["refused_or_failed"] == 0,
        "errors": errors,
        "connections_opened": pool.opened,
        "first_refusal": refusals[0] if refusals else None,
        "webhooks_per_s": round(outcome["delivered"] / span, 1) if span > 0 else 0.0,
        **{key: value for key, value in outcome.items() if not key.endswith("_ns")},
        "generator_cpu": cpu,
    }


# -- a single task to an idle service ---------------------------------------------------------------------


async def idle(spec: dict[str, Any]) -> dict[str, Any]:
    port, raw = spec["port"], task_request(spec)
    latencies: list[int] = []
    accept: list[int] = []
    lost = accepted_total = 0
    connection = await Connection.open(port)
    for _ in range(spec["samples"]):
        await asyncio.sleep(spec["pause_s"])
        await reset_receiver(spec["receiver_port"])
        sent = time.monotonic_ns()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, body = await connection.request(raw)
        except _FAILURES:  # the server closed an idle keep-alive connection: count it, reconnect
            connection.close()
            connection = await Connection.open(port)
            lost += 1
            continue
        answered = time.monotonic_ns()
        if status != 202:
            lost += 1
            continue
        accepted_total += 1
        task_id = task_id_of(body)
        records, _complete = await collect_webhooks(spec["receiver_port"], [task_id], spec["grace_s"])
        if task_id not in records:
            lost += 1
            continue
        accept.append(answered - sent)
        latencies.append(records[task_id][0] - sent)
    connection.close()
    return {
        "mode": "idle",
        "samples": spec["samples"],
        "accepted_total": accepted_total,
        "pause_s": spec["pause_s"],
        "undelivered": lost,
        "send_to_webhook_ms": [round(value / 1e6, 3) for value in latencies],
        "e2e_latency_ms": summary_ms(latencies),
        "accept_latency_ms": summary_ms(accept),
    }


MODES: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "closed": closed,
    "drain": drain,
    "open": open_loop,
    "idle": idle,
}


def main() -> None:
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    runner = MODES[spec["mode"]]
    result: dict[str, Any]
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(runner(spec))
    else:
        result = uvloop.run(runner(spec))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
