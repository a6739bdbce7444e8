"""`make bench`: the emrtasks benchmark, end to end against the real `serve` process.

    python bench/run.py [--db sqlite|postgres|both] [--runs 3] [--quick] [--profile] [--out bench/results]
    python bench/run.py --table bench/results/<date>-sqlite.json bench/results/<date>-postgres.json

Each run starts `python -m emrtasks serve` (pinned to core 0) on a fresh database, with a sandbox
connection at zero latency and a webhook receiver on loopback, and measures, with the load
generator in its own process (pinned to core 1):

1. accept: requests/s and p50/p95/p99 of `POST /v1/tasks` (durable commit) and of the same server's
   no-op route `POST /v1/bench/noop`, at each concurrency, and their ratio;
2. end to end, accept to verified webhook: (a) drained-backlog throughput, (b) latency at a fixed
   open-loop load of 100 tasks/s, (c) sustained capacity: the highest offered rate on a step ladder
   with nothing lost and p99 < 250 ms, (d) idle pick-up: one task to an idle service;
3. memory: the service's peak RSS over the run.

Figures are the median of the runs with their spread (min-max). Results go to
`<out>/<date>-<db>[-quick].json` and a table is printed. `--profile` adds one more run per database
with py-spy attached during the accept load and during the end-to-end load (see profiling.py).
"""

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
import profiling
from harness import Stack

TARGETS = {
    "accept_ratio_peak": (">=", 0.50, "accept req/s >= 50 % of the no-op route's"),
    "e2e_capacity": (">=", 600.0, "sustained capacity >= 600 tasks/s"),
    "e2e_fixed_p50": ("<", 10.0, "at 100 tasks/s: p50 < 10 ms"),
    "e2e_fixed_p99": ("<", 50.0, "at 100 tasks/s: p99 < 50 ms"),
    "e2e_idle": ("<", 10.0, "idle task < 10 ms"),
    "memory_peak_mb": ("<", 150.0, "peak RSS < 150 MB"),
}
REFERENCE = {  # FastAPI + Celery + Redis doing the same work (the pipeline to beat)
    "accept_tasks_rps_peak": 530.0,
    "accept_noop_rps_peak": 9500.0,
    "accept_ratio_peak": 0.06,
    "e2e_drained": 300.0,
    "e2e_fixed_p50": 5.0,
    "e2e_fixed_p99": 9.0,
    "e2e_idle": 6.0,
    "memory_peak_mb": 171.0,
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how hard each phase runs."""

    concurrencies: tuple[int, ...] = (1, 16, 64)
    accept_warmup_s: float = 0.5
    accept_duration_s: float = 2.0
    drain_n: int = 600
    drain_concurrency: int = 64
    fixed_rate: float = 100.0
    fixed_duration_s: float = 4.0
    ladder: tuple[float, ...] = (10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200, 1600, 2000)
    step_duration_s: float = 4.0
    p99_limit_ms: float = 250.0
    idle_samples: int = 5
    idle_pause_s: float = 1.5
    grace_s: float = 10.0  # how long webhooks may trail the last send before they count as undelivered
    drain_grace_s: float = 120.0
    quiesce_timeout_s: float = 180.0
    profile_accept_s: float = 8.0
    profile_states_s: float = 3.0
    profile_rate_hz: int = 200
    profile_wall_rate_hz: int = 25


FULL = Plan()
QUICK = Plan(
    accept_warmup_s=0.3,
    accept_duration_s=1.0,
    drain_n=200,
    fixed_duration_s=2.0,
    ladder=(10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1600),
    step_duration_s=1.5,
    idle_samples=3,
    idle_pause_s=1.2,
    grace_s=5.0,
    profile_accept_s=4.0,
    profile_states_s=2.0,
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- one run --------------------------------------------------------------------------------------------


def accept_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """The no-op route at every concurrency first (no backlog behind it), then POST /v1/tasks."""
    timeout = plan.accept_warmup_s + plan.accept_duration_s + 120
    results: dict[str, dict[str, Any]] = {str(c): {} for c in plan.concurrencies}
    for path, name in (("/v1/bench/noop", "noop"), ("/v1/tasks", "tasks")):
        for concurrency in plan.concurrencies:
            spec = stack.spec(
                "closed",
                path,
                concurrency=concurrency,
                warmup_s=plan.accept_warmup_s,
                duration_s=plan.accept_duration_s,
            )
            result = stack.phase(spec, timeout)
            results[str(concurrency)][name] = result
            latency = result["latency_ms"]
            log(
                f"  accept {name:5} c={concurrency:<3} {result['rps']:8.1f} req/s  p50 {latency.get('p50')} "
                f"p99 {latency.get('p99')} ms  errors {result['errors']}  generator CPU "
                f"{result['generator_cpu']['util']:.0%}  service CPU {result['service_cpu_util']:.0%}"
            )
    for concurrency in plan.concurrencies:
        pair = results[str(concurrency)]
        pair["ratio"] = round(pair["tasks"]["rps"] / pair["noop"]["rps"], 4) if pair["noop"]["rps"] else 0.0
    return results


def capacity_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """Step up the offered rate until a step loses a task or its p99 reaches the limit."""
    steps: list[dict[str, Any]] = []
    capacity = 0.0
    for rate in plan.ladder:
        spec = stack.spec("open", rate=rate, duration_s=plan.step_duration_s, grace_s=plan.grace_s)
        result = stack.phase(spec, plan.step_duration_s + plan.grace_s + 120)
        p99 = result["e2e_latency_ms"].get("p99", float("inf"))
        result["passed"] = bool(result["complete"] and p99 < plan.p99_limit_ms)
        result["drain_after"] = stack.quiesce(plan.quiesce_timeout_s)
        steps.append(result)
        log(
            f"  ladder {rate:6.0f}/s  accepted {result['accepted']}/{result['offered']}  undelivered "
            f"{result['undelivered']}  p50 {result['e2e_latency_ms'].get('p50')} p99 {p99} ms  "
            f"{'pass' if result['passed'] else 'FAIL'}  generator CPU {result['generator_cpu']['util']:.0%}"
        )
        if not result["passed"]:
            break
        capacity = rate
    return {"tasks_per_s": capacity, "p99_limit_ms": plan.p99_limit_ms, "steps": steps}


def run_once(db: str, plan: Plan, index: int, runs: int, extra_env: dict[str, str]) -> dict[str, Any]:
    """One run: the accept phase on one service, then the end-to-end phases on a fresh one (so that
    they start with an empty queue instead of waiting for the accept phase's backlog to drain)."""
    started = time.monotonic()
    result: dict[str, Any] = {
        "run": index + 1,
        "load_average_start": os.getloadavg(),
        "code_at_start": code_version(),
    }
    log(f"[{db} run {index + 1}/{runs}] accept phase: starting serve")
    with Stack(db, extra_env) as stack:
        result["accept"] = accept_phase(stack, plan)
        result["memory_accept"] = stack.memory()
        result["backlog_left"] = stack.accepted_total - stack.receiver_stats()["verified_total"]
        warnings = list(stack.warnings)
    log(f"  memory: {result['memory_accept']}; {result['backlog_left']} tasks left in the queue")

    log(f"[{db} run {index + 1}/{runs}] end-to-end phases: starting a fresh serve")
    with Stack(db, extra_env) as stack:
        spec = stack.spec(
            "drain", n=plan.drain_n, concurrency=plan.drain_concurrency, grace_s=plan.drain_grace_s
        )
        drained = stack.phase(spec, plan.drain_grace_s + 300)
        result["drained"] = drained
        stack.quiesce(plan.quiesce_timeout_s)
        log(
            f"  drained backlog: {drained['delivered']}/{drained['n']} webhooks in "
            f"{drained['seconds_to_last_webhook']} s = {drained['tasks_per_s']} tasks/s "
            f"(accepts {drained['accepts_per_s']}/s)"
        )

        spec = stack.spec(
            "open", rate=plan.fixed_rate, duration_s=plan.fixed_duration_s, grace_s=plan.grace_s
        )
        fixed = stack.phase(spec, plan.fixed_duration_s + plan.grace_s + 120)
        result["fixed"] = fixed
        result["fixed_drain"] = stack.quiesce(plan.quiesce_timeout_s)
        latency = fixed["e2e_latency_ms"]
        log(
            f"  {plan.fixed_rate:.0f} tasks/s open loop: accept-to-webhook p50 {latency.get('p50')} "
            f"p95 {latency.get('p95')} p99 {latency.get('p99')} ms, undelivered {fixed['undelivered']}"
        )

        result["capacity"] = capacity_phase(stack, plan)
        log(f"  sustained capacity: {result['capacity']['tasks_per_s']:.0f} tasks/s")

        spec = stack.spec("idle", samples=plan.idle_samples, pause_s=plan.idle_pause_s, grace_s=plan.grace_s)
        result["idle"] = stack.phase(spec, plan.idle_samples * (plan.idle_pause_s + plan.grace_s) + 60)
        log(f"  idle pick-up, send to webhook: {result['idle']['send_to_webhook_ms']} ms")

        result["memory"] = stack.memory()
        result["receiver"] = stack.receiver_stats()
        result["warnings"] = warnings + stack.warnings
        log(f"  memory: {result['memory']}")
    result["load_average_end"] = os.getloadavg()
    result["code_at_end"] = code_version()
    if result["code_at_end"] != result["code_at_start"]:
        result["warnings"].append("the service's code changed during the run (see code_at_start/_end)")
        log(
            f"  warning: the code changed during the run: {result['code_at_start']['commit']} -> "
            f"{result['code_at_end']['commit']}"
        )
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def code_version() -> dict[str, Any]:
    """The commit the service runs from, and the files under src/ that differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=harness.BENCH_DIR
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "src").splitlines()
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_in_src": [line[3:] for line in changed],
    }


# -- headline figures of a run, and their medians --------------------------------------------------------


def _phases(run: dict[str, Any]) -> list[dict[str, Any]]:
    found = [result for pair in run["accept"].values() for result in (pair["noop"], pair["tasks"])]
    return [*found, run["drained"], run["fixed"], *run["capacity"]["steps"]]


def headline(run: dict[str, Any]) -> dict[str, float]:
    """The figures of one run that the table and the targets use, flat."""
    figures: dict[str, float] = {}
    for concurrency, pair in run["accept"].items():
        for name in ("tasks", "noop"):
            figures[f"accept_c{concurrency}_{name}_rps"] = pair[name]["rps"]
            for q in ("p50", "p95", "p99"):
                figures[f"accept_c{concurrency}_{name}_{q}"] = pair[name]["latency_ms"].get(q, float("nan"))
        figures[f"accept_c{concurrency}_ratio"] = pair["ratio"]
    tasks_peak = max(pair["tasks"]["rps"] for pair in run["accept"].values())
    noop_peak = max(pair["noop"]["rps"] for pair in run["accept"].values())
    figures["accept_tasks_rps_peak"] = tasks_peak
    figures["accept_noop_rps_peak"] = noop_peak
    figures["accept_ratio_peak"] = round(tasks_peak / noop_peak, 4) if noop_peak else 0.0
    figures["e2e_drained"] = run["drained"]["tasks_per_s"]
    delivered = run["drained"]["delivered"] or 1
    figures["e2e_cpu_ms_per_task"] = round(1000 * run["drained"]["service_cpu_seconds"] / delivered, 2)
    noop = run["accept"][str(max(int(c) for c in run["accept"]))]["noop"]
    figures["noop_cpu_ms_per_request"] = round(
        1000 * noop["service_cpu_seconds"] / max(noop["sent_total"], 1), 3
    )
    for q in ("p50", "p95", "p99"):
        figures[f"e2e_fixed_{q}"] = run["fixed"]["e2e_latency_ms"].get(q, float("nan"))
    figures["e2e_fixed_undelivered"] = run["fixed"]["undelivered"]
    figures["e2e_capacity"] = run["capacity"]["tasks_per_s"]
    figures["e2e_idle"] = run["idle"]["e2e_latency_ms"].get("p50", float("nan"))
    figures["memory_peak_mb"] = max(
        memory[key]
        for memory in (run["memory"], run["memory_accept"])
        for key in ("vm_hwm_mb", "rss_peak_sampled_mb")
    )
    figures["generator_cpu_max"] = max(phase["generator_cpu"]["util"] for phase in _phases(run))
    figures["receiver_cpu_max"] = max(phase["receiver_cpu_util"] for phase in _phases(run))
    figures["service_cpu_max"] = max(phase["service_cpu_util"] for phase in _phases(run))
    figures["run_seconds"] = run["seconds"]
    return figures


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    flat = [headline(run) for run in runs]
    summary: dict[str, dict[str, Any]] = {}
    for key in flat[0] if flat else []:
        values = [figures[key] for figures in flat]
        summary[key] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": values,
        }
    return summary


def verdicts(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for key, (op, limit, text) in TARGETS.items():
        if key not in summary:
            continue
        value = summary[key]["median"]
        met = value >= limit if op == ">=" else value < limit
        found[key] = {"target": text, "median": value, "met": met, "reference": REFERENCE.get(key)}
    return found


# -- the table ----------------------------------------------------------------------------------------------

Row = tuple[str, str, Callable[[float], str]]


def _n(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _capacity(plan: Plan) -> Callable[[float], str]:
    def fmt(value: float) -> str:
        return _n(value) if value else f"<{plan.ladder[0]:.0f}"

    return fmt


def rows(plan: Plan) -> list[Row]:
    found: list[Row] = []
    for c in plan.concurrencies:
        found += [
            (f"accept c={c}: POST /v1/tasks req/s", f"accept_c{c}_tasks_rps", _n),
            (f"accept c={c}: no-op req/s", f"accept_c{c}_noop_rps", _n),
            (f"accept c={c}: tasks / no-op", f"accept_c{c}_ratio", _pct),
            (f"accept c={c}: tasks p50 ms", f"accept_c{c}_tasks_p50", _ms),
            (f"accept c={c}: tasks p95 ms", f"accept_c{c}_tasks_p95", _ms),
            (f"accept c={c}: tasks p99 ms", f"accept_c{c}_tasks_p99", _ms),
            (f"accept c={c}: no-op p50 ms", f"accept_c{c}_noop_p50", _ms),
            (f"accept c={c}: no-op p99 ms", f"accept_c{c}_noop_p99", _ms),
        ]
    found += [
        ("accept peak: POST /v1/tasks req/s", "accept_tasks_rps_peak", _n),
        ("accept peak: no-op req/s", "accept_noop_rps_peak", _n),
        ("accept peak: tasks / no-op peak", "accept_ratio_peak", _pct),
        ("e2e drained backlog tasks/s", "e2e_drained", _n),
        ("serve CPU ms per task, drained backlog", "e2e_cpu_ms_per_task", _ms),
        (f"serve CPU ms per no-op request, c={max(plan.concurrencies)}", "noop_cpu_ms_per_request", _ms),
        (f"e2e at {plan.fixed_rate:.0f}/s: p50 ms", "e2e_fixed_p50", _ms),
        (f"e2e at {plan.fixed_rate:.0f}/s: p95 ms", "e2e_fixed_p95", _ms),
        (f"e2e at {plan.fixed_rate:.0f}/s: p99 ms", "e2e_fixed_p99", _ms),
        (f"e2e at {plan.fixed_rate:.0f}/s: undelivered", "e2e_fixed_undelivered", _n),
        (f"e2e sustained capacity tasks/s (p99<{plan.p99_limit_ms:.0f})", "e2e_capacity", _capacity(plan)),
        ("e2e idle task, send to webhook ms", "e2e_idle", _ms),
        ("serve peak RSS MB", "memory_peak_mb", _n),
        ("load generator CPU, busiest phase", "generator_cpu_max", _pct),
        ("receiver CPU, busiest phase", "receiver_cpu_max", _pct),
        ("serve CPU, busiest phase", "service_cpu_max", _pct),
        ("run duration s", "run_seconds", _n),
    ]
    return found


def table(plan: Plan, summaries: dict[str, dict[str, dict[str, Any]]]) -> str:
    dbs = list(summaries)
    header = f"{'metric':44}" + "".join(f"{db + ' median':>16}{'[min-max]':>22}" for db in dbs)
    lines = [header, "-" * len(header)]
    for label, key, fmt in rows(plan):
        line = f"{label:44}"
        for db in dbs:
            figure = summaries[db].get(key)
            if figure is None:
                line += f"{'-':>16}{'':>22}"
                continue
            spread = f"[{fmt(figure['min'])}-{fmt(figure['max'])}]"
            line += f"{fmt(figure['median']):>16}{spread:>22}"
        lines.append(line)
    lines += ["", f"{'target (one serve process, sandbox at 0 ms)':52}" + "".join(f"{db:>14}" for db in dbs)]
    lines.append(f"{'':52}" + "".join(f"{'':>14}" for _ in dbs) + "   Celery reference")
    for key, (_op, _limit, text) in TARGETS.items():
        _label, _key, fmt = next((row for row in rows(plan) if row[1] == key), ("", key, _n))
        line = f"{text:52}"
        for db in dbs:
            figure = summaries[db].get(key)
            if figure is None:
                line += f"{'-':>14}"
                continue
            met = verdicts(summaries[db])[key]["met"]
            line += f"{fmt(figure['median']) + (' ok' if met else ' NO'):>14}"
        reference = REFERENCE.get(key)
        lines.append(line + (f"   {fmt(reference)}" if reference is not None else ""))
    return "\n".join(lines)


# -- profiling --------------------------------------------------------------------------------------------


def profile(db: str, plan: Plan, out: Path, stem: str, extra_env: dict[str, str]) -> dict[str, Any]:
    """py-spy on serve during the accept load (c=64) and, on a fresh serve, during a drained backlog.

    Each phase is first watched by the thread-state sampler alone (py-spy itself disturbs the
    threads: its reads of the process's memory hold the lock that mmap and munmap need), then by
    py-spy and the sampler together."""
    found: dict[str, Any] = {}
    log(f"[{db} profile] accept: starting serve")
    with Stack(db, extra_env) as stack:
        record_s, states_s = plan.profile_accept_s, plan.profile_states_s
        spec = stack.spec("closed", concurrency=64, warmup_s=0.5, duration_s=states_s + record_s + 2.5)
        loadgen = stack.start_loadgen(spec)
        time.sleep(1.5)
        unprofiled = _thread_states(stack, states_s)
        found["accept"] = _record(stack, out / f"{stem}-profile-accept", plan, duration=record_s)
        found["accept"]["threads_unprofiled"] = unprofiled
        found["accept"]["load"] = stack.finish_loadgen(loadgen, record_s + 120)
        found["accept"]["title"] = f"{db}: POST /v1/tasks, closed loop, 64 connections"
    log(f"[{db} profile] end to end: starting a fresh serve")
    with Stack(db, extra_env) as stack:
        spec = stack.spec("drain", n=plan.drain_n, concurrency=64, grace_s=plan.drain_grace_s)
        states = profiling.ThreadStates(stack.pid)
        states.start()
        unprofiled_load = stack.phase(spec, plan.drain_grace_s + 300)
        states.stop()
        stack.quiesce(plan.quiesce_timeout_s)
        # N tasks submitted as fast as possible, recorded until the last webhook is verified
        found["e2e"] = _record(stack, out / f"{stem}-profile-e2e", plan, spec=spec)
        found["e2e"]["threads_unprofiled"] = states.summary(
            profiling.thread_names(out / f"{stem}-profile-e2e.wall.txt")
        )
        found["e2e"]["load_unprofiled"] = unprofiled_load
        found["e2e"]["title"] = f"{db}: drained backlog of {plan.drain_n} tasks, accept to verified webhook"
    for phase in ("accept", "e2e"):
        log(describe_profile(found[phase]))
    return found


def _thread_states(stack: Stack, seconds: float) -> dict[str, Any]:
    """The thread-state sampler alone for `seconds`; threads named by a one-second py-spy dump."""
    states = profiling.ThreadStates(stack.pid)
    states.start()
    time.sleep(seconds)
    states.stop()
    names = profiling.dump_thread_names(stack.pid)
    return states.summary(names)


def _record(
    stack: Stack, base: Path, plan: Plan, duration: float | None = None, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record one phase: py-spy (cpu and wall) and the thread-state sampler; for `duration` s, or
    for as long as the load generator runs `spec`."""
    cpu_path, wall_path = base.with_suffix(".cpu.txt"), base.with_suffix(".wall.txt")
    rate, wall_rate = plan.profile_rate_hz, plan.profile_wall_rate_hz
    cpu = profiling.Recorder(stack.pid, cpu_path, wall=False, rate=rate, duration=duration)
    wall = profiling.Recorder(stack.pid, wall_path, wall=True, rate=wall_rate, duration=duration)
    states = profiling.ThreadStates(stack.pid)
    before, started = profiling.thread_cpu(stack.pid), time.monotonic()
    for sampler in (cpu, wall, states):
        sampler.start()
    load = None
    if spec is not None:
        time.sleep(0.5)  # py-spy attaches
        load = stack.finish_loadgen(stack.start_loadgen(spec), plan.drain_grace_s + 300)
    elif duration is not None:
        time.sleep(duration)
    states.stop()
    cpu.stop()
    wall.stop()
    seconds = time.monotonic() - started
    after = profiling.thread_cpu(stack.pid)
    names = profiling.thread_names(wall_path)
    summary = profiling.summarise(cpu_path, wall_path, base.name)
    summary["seconds"] = round(seconds, 2)
    summary["cores_by_thread"] = profiling.cpu_by_thread(before, after, names, seconds)
    summary["threads"] = states.summary(names)
    if load is not None:
        summary["load"] = load
    return summary


def describe_profile(found: dict[str, Any], top: int = 15) -> str:
    cpu = found["cpu"]
    lines = [
        f"profile: {found['title']} ({found['seconds']} s, {cpu['samples']} samples holding the GIL)",
        "  cores used, by kind of thread (while profiled): "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in found["cores_by_thread"].items()),
        "  thread states without py-spy attached:",
    ]
    for kind, threads in found.get("threads_unprofiled", {}).items():
        states = ", ".join(f"{state} {share:.0%}" for state, share in list(threads["states"].items())[:4])
        lines.append(
            f"    {kind} (x{threads['threads']}, {threads['threads_on_average']} on average): {states}"
        )
    for title, key in (("by path", "by_path"), ("by package (own time)", "by_package")):
        lines.append(f"  GIL samples {title}: " + ", ".join(f"{k} {v:.0%}" for k, v in cpu[key].items()))
    lines.append(f"  top {top} functions by own time (share of GIL samples):")
    lines += [f"    {row['share']:6.1%}  {row['function']}  ({row['where']})" for row in cpu["top_own"][:top]]
    for key, name in (("top_own_accept_path", "accept path"), ("top_own_worker_path", "worker path")):
        lines.append(f"  top of the {name} (share of that path's samples):")
        lines += [f"    {row['share']:6.1%}  {row['function']}  ({row['where']})" for row in cpu[key][:8]]
    lines.append("  emrtasks functions by inclusive time (SQL run in greenlets not included):")
    lines += [f"    {row['share']:6.1%}  {row['function']}" for row in cpu["top_inclusive_emrtasks"][:10]]
    lines.append("  files: " + ", ".join(Path(p).name for p in found["files"]))
    return "\n".join(lines)


# -- the machine, and main ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages: dict[str, str | None] = {}
    for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "aiosqlite", "asyncpg", "httpx", "uvloop"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
        "packages": packages,
        "taskset": bool(harness.pinned(["x"], 0) != ["x"]),
        "code": code_version(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per database (default 3; 1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="short phases, one run: a ~1-minute smoke run")
    parser.add_argument("--profile", action="store_true", help="one more run per database under py-spy")
    parser.add_argument("--out", type=Path, default=harness.BENCH_DIR / "results", help="where results go")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="EMRTASKS_X=VALUE",
        help="an extra setting for serve (repeatable), e.g. EMRTASKS_SQLITE_SYNCHRONOUS=NORMAL; "
        "the results file is then tagged -custom",
    )
    parser.add_argument(
        "--table",
        nargs="+",
        type=Path,
        metavar="RESULTS.json",
        help="print the table of results files written earlier, and run nothing",
    )
    return parser.parse_args(argv)


def print_table(paths: list[Path]) -> int:
    documents = [json.loads(path.read_text()) for path in paths]
    fields: dict[str, Any] = {
        name: tuple(v) if isinstance(v, list) else v for name, v in documents[0]["plan"].items()
    }
    plan = Plan(**fields)
    summaries = {f"{doc['db']}{'-quick' if doc['quick'] else ''}": doc["summary"] for doc in documents}
    print(f"{', '.join(str(path) for path in paths)}: median [min-max] of each file's runs")
    print(table(plan, summaries))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        return print_table(args.table)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > harness.LOAD_CORE:
        os.sched_setaffinity(0, {harness.LOAD_CORE})  # this process and its samplers stay off serve's core
    plan = QUICK if args.quick else FULL
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    extra_env = dict(item.split("=", 1) for item in args.set)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    args.out.mkdir(parents=True, exist_ok=True)
    date = dt.date.today().isoformat()
    suffix = ("-quick" if args.quick else "") + ("-custom" if extra_env else "")
    about = machine()
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    started = time.monotonic()
    for db in dbs:
        stem = f"{date}-{db}{suffix}"
        results = [run_once(db, plan, index, runs, extra_env) for index in range(runs)]
        summary = summarise(results)
        if results:
            summaries[db] = summary
        document: dict[str, Any] = {
            "date": date,
            "db": db,
            "quick": args.quick,
            "runs": runs,
            "machine": about,
            "plan": dataclasses.asdict(plan),
            "service_env": harness.service_env(db, Path("<temp dir>"), extra_env),
            "summary": summary,
            "targets": verdicts(summary),
            "reference": REFERENCE,
            "results": results,
        }
        if args.profile:
            document["profile"] = profile(db, plan, args.out, stem, extra_env)
        path = args.out / f"{stem}.json"
        path.write_text(json.dumps(document, indent=1, default=str) + "\n")
        log(f"wrote {path}")
    if summaries:
        print()
        print(
            f"emrtasks bench {date}: {runs} run(s) per database, median [min-max]"
            + (" (quick)" if args.quick else "")
        )
        print(f"{about['cpus']} x {about['cpu_model']}, Python {about['python']}, SQLite {about['sqlite']}")
        print(table(plan, summaries))
    log(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
