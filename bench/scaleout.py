"""`make bench-scaleout`: drained-backlog throughput on PostgreSQL as emrtasks processes are added.

    python bench/scaleout.py [--runs 3] [--quick] [--n 1000] [--configs serve,split-1,...] [--out DIR]
    python bench/scaleout.py --table bench/results/<date>-scaleout.json

Configurations (CONFIGS): `serve` alone (API and worker in one process, the baseline);
`serve --no-worker` with 1, 2 and 3 `emrtasks worker` processes; two `serve --reuse-port` processes
(each with its worker) sharing one port. Each run of each configuration starts its processes on a
fresh scratch database (harness.Stack), sends one task end to end as a warm-up, then N tasks as fast
as 64 connections can (loadgen's `drain` mode, as bench/run.py's end-to-end phase (a)), timed from
the first request to the last verified webhook. Around the drain it reads utime+stime
(/proc/<pid>/stat) of every emrtasks process, of PostgreSQL's processes (the bench database's
backends, the server's shared processes, and every `postgres` process, neighbours' included), of
the receiver and of the whole machine (/proc/stat), and afterwards the database's `xact_commit` +
`xact_rollback` (pg_stat_database). Runs are interleaved (run 1 of every configuration, then run 2,
...) so that drift on a shared machine falls on all of them alike; figures are medians [min-max].
Nothing is pinned to a core: every process here competes for the machine's cores, which is what
adding processes means; the core count is recorded with the results.
"""

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import harness
import run as bench_run

SCRATCH_DB = "emrtasks_scaleout"  # its own name: a `make bench` beside it drops emrtasks_bench
STATS_FLUSH_S = 11.0  # an idle PostgreSQL 15 backend reports its counters within 10 s
CONCURRENCY = 64
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    label: str
    serves: int = 1
    serve_workers: bool = True
    workers: int = 0


CONFIGS = (
    Config("serve", "serve (API + worker), the baseline"),
    Config("split-1", "serve --no-worker + 1 worker", serve_workers=False, workers=1),
    Config("split-2", "serve --no-worker + 2 workers", serve_workers=False, workers=2),
    Config("split-3", "serve --no-worker + 3 workers", serve_workers=False, workers=3),
    Config("reuseport-2", "2 x serve --reuse-port (each with its worker)", serves=2),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the processes --------------------------------------------------------------------------------------


class ScaleStack(harness.Stack):
    """A Stack whose service is the processes of one configuration, unpinned."""

    pg_database = SCRATCH_DB
    pin = False

    def __init__(self, config: Config, extra_env: dict[str, str]) -> None:
        self.config = config
        self.others: dict[str, Any] = {}
        super().__init__("postgres", extra_env)

    def _start_service(self) -> None:
        flags = ["--port", str(self.port)]
        flags += [] if self.config.serve_workers else ["--no-worker"]
        flags += ["--reuse-port"] if self.config.serves > 1 else []
        self.service = self.launch(["serve", *flags], "serve-1")
        self._wait_until_up(self.service, self.port, "/healthz", "serve")
        for index in range(2, self.config.serves + 1):
            self.others[f"serve-{index}"] = self.launch(["serve", *flags], f"serve-{index}")
        for index in range(1, self.config.workers + 1):
            self.others[f"worker-{index}"] = self.launch(["worker"], f"worker-{index}")
        listening = self.config.serves * self.config.serve_workers + self.config.workers
        self._wait_for(lambda: listeners(self.port) >= self.config.serves, "every serve to listen")
        self._wait_for(lambda: pg_listeners(SCRATCH_DB) >= listening, "every worker to LISTEN")

    def _wait_for(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            for name, process in self.processes_running().items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.tmp}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.tmp}")
            time.sleep(0.05)

    def processes_running(self) -> dict[str, Any]:
        return {"serve-1": self.service, **self.others}

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes_running().items()}

    def close(self, keep_files: bool = False) -> None:
        for process in self.others.values():
            harness._stop(process)
        super().close(keep_files)


def listeners(port: int) -> int:
    """Sockets in LISTEN state on this TCP port (/proc/net/tcp and tcp6)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in list(handle)[1:]:
                local, state = line.split()[1], line.split()[3]
                found += int(local.rsplit(":", 1)[1], 16) == port and state == "0A"
    return found


async def _pg_rows(sql: str, *args: Any) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(harness.PG_ADMIN_DSN, timeout=10)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


def pg_rows(sql: str, *args: Any) -> list[Any]:
    return asyncio.run(_pg_rows(sql, *args))


def pg_listeners(database: str) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'"
    return int(pg_rows(sql, database)[0][0])


def pg_transactions(database: str) -> int:
    sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1"
    return int(pg_rows(sql, database)[0][0])


# -- CPU from /proc -------------------------------------------------------------------------------------


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process named `postgres`, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() == "postgres":
                    found[int(entry)] = harness.cpu_seconds(int(entry))
        except OSError:  # it ended meanwhile
            continue
    return found


def postgres_kinds(database: str) -> dict[int, str]:
    """`bench` for the bench database's backends, `shared` for the server's own processes (WAL
    writer, checkpointer, ...), `other` for other databases' backends (neighbours)."""
    kinds = {database: "bench", None: "shared"}
    rows = pg_rows("SELECT pid, datname FROM pg_stat_activity")
    return {int(row["pid"]): kinds.get(row["datname"], "other") for row in rows}


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot (/proc/stat); iowait counts as idle."""
    with open("/proc/stat") as handle:
        fields = [int(part) for part in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclasses.dataclass
class Snapshot:
    emrtasks: dict[str, float]
    postgres: dict[int, float]
    receiver: float
    ticks: tuple[int, int]
    wall: float

    @classmethod
    def take(cls, stack: ScaleStack) -> "Snapshot":
        assert stack.receiver is not None
        return cls(
            {name: harness.cpu_seconds(pid) for name, pid in stack.pids().items()},
            postgres_cpu(),
            harness.cpu_seconds(stack.receiver.pid),
            machine_ticks(),
            time.monotonic(),
        )


def cpu_use(before: Snapshot, after: Snapshot, kinds: dict[int, str]) -> dict[str, Any]:
    """CPU seconds over the drain: each emrtasks process; PostgreSQL's by kind (a process not in
    pg_stat_activity is the postmaster: shared); the receiver; the machine's busy cores."""
    postgres = {"bench": 0.0, "shared": 0.0, "other": 0.0}
    for pid, seconds in after.postgres.items():
        postgres[kinds.get(pid, "shared")] += seconds - before.postgres.get(pid, 0.0)
    busy, total = (a - b for a, b in zip(after.ticks, before.ticks, strict=True))
    wall = after.wall - before.wall
    return {
        "emrtasks": {name: round(after.emrtasks[name] - before.emrtasks[name], 3) for name in after.emrtasks},
        "postgres": {kind: round(seconds, 3) for kind, seconds in postgres.items()},
        "receiver": round(after.receiver - before.receiver, 3),
        "machine_busy_cores": round(busy / total * (os.cpu_count() or 1), 2) if total else 0.0,
        "wall_seconds": round(wall, 3),
    }


# -- one run of one configuration ----------------------------------------------------------------------------


def run_once(config: Config, n: int, extra_env: dict[str, str]) -> dict[str, Any]:
    with ScaleStack(config, extra_env) as stack:
        transactions = pg_transactions(SCRATCH_DB)
        spec = stack.spec("drain", n=n, concurrency=CONCURRENCY, grace_s=120.0)
        before = Snapshot.take(stack)
        drained = stack.finish_loadgen(stack.start_loadgen(spec), 420)
        after = Snapshot.take(stack)
        cpu = cpu_use(before, after, postgres_kinds(SCRATCH_DB))
        time.sleep(STATS_FLUSH_S)
        transactions = pg_transactions(SCRATCH_DB) - transactions
        warnings = list(stack.warnings)
    return {
        "config": config.name,
        "load_average_start": os.getloadavg(),
        "drained": drained,
        "cpu": cpu,
        "transactions": transactions,
        "warnings": warnings,
    }


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The headline figures of one run: throughput, and CPU ms and transactions per delivered task."""
    drained, cpu = result["drained"], result["cpu"]
    per_task = 1000 / max(drained["delivered"], 1)
    serve = sum(s for name, s in cpu["emrtasks"].items() if name.startswith("serve"))
    worker = sum(s for name, s in cpu["emrtasks"].items() if name.startswith("worker"))
    postgres = cpu["postgres"]
    ours = serve + worker + postgres["bench"] + postgres["shared"] + cpu["receiver"]
    ours += drained["generator_cpu"]["cpu_seconds"]
    ours_cores = ours / cpu["wall_seconds"] if cpu["wall_seconds"] else 0.0
    service_ms = (serve + worker + postgres["bench"] + postgres["shared"]) * per_task
    return {
        "tasks_per_s": drained["tasks_per_s"],
        "complete": float(drained["complete"]),
        "emrtasks_ms_per_task": round((serve + worker) * per_task, 3),
        "serve_ms_per_task": round(serve * per_task, 3),
        "worker_ms_per_task": round(worker * per_task, 3),
        "pg_ms_per_task": round((postgres["bench"] + postgres["shared"]) * per_task, 3),
        "pg_backends_ms_per_task": round(postgres["bench"] * per_task, 3),
        "pg_shared_ms_per_task": round(postgres["shared"] * per_task, 3),
        "pg_neighbours_cpu_s": postgres["other"],
        "transactions_per_task": round(result["transactions"] / max(drained["delivered"], 1), 2),
        "receiver_ms_per_task": round(cpu["receiver"] * per_task, 3),
        "generator_cpu_util": drained["generator_cpu"]["util"],
        "machine_busy_cores": cpu["machine_busy_cores"],
        "ceiling_tasks_per_s": round((os.cpu_count() or 1) * 1000 / max(service_ms, 0.001)),
        "bench_cores": round(ours_cores, 2),
        "others_cores": round(max(cpu["machine_busy_cores"] - ours_cores, 0.0), 2),
    }


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for name in dict.fromkeys(result["config"] for result in results):
        flat = [figures(result) for result in results if result["config"] == name]
        summary[name] = {
            key: {
                "median": statistics.median(f[key] for f in flat),
                "min": min(f[key] for f in flat),
                "max": max(f[key] for f in flat),
                "runs": [f[key] for f in flat],
            }
            for key in flat[0]
        }
    return summary


# -- the table and the projection --------------------------------------------------------------------------

COLUMNS = (
    ("tasks/s", "tasks_per_s", "{:,.0f}"),
    ("emrtasks ms/task", "emrtasks_ms_per_task", "{:.2f}"),
    ("serve ms", "serve_ms_per_task", "{:.2f}"),
    ("worker ms", "worker_ms_per_task", "{:.2f}"),
    ("PG ms/task", "pg_ms_per_task", "{:.2f}"),
    ("PG backends", "pg_backends_ms_per_task", "{:.2f}"),
    ("xacts/task", "transactions_per_task", "{:.1f}"),
    ("CPU ceiling tasks/s", "ceiling_tasks_per_s", "{:,.0f}"),
    ("busy cores", "machine_busy_cores", "{:.2f}"),
    ("others' cores", "others_cores", "{:.2f}"),
)


def table(summary: dict[str, dict[str, dict[str, Any]]], cores: int) -> str:
    header = f"{'configuration':12}" + "".join(f"{title:>21}" for title, _key, _fmt in COLUMNS)
    lines = [header, "-" * len(header)]
    for config in CONFIGS:
        if config.name not in summary:
            continue
        line = f"{config.name:12}"
        for _title, key, fmt in COLUMNS:
            figure = summary[config.name][key]
            cell = f"{fmt.format(figure['median'])} [{fmt.format(figure['min'])}-{fmt.format(figure['max'])}]"
            line += f"{cell:>21}"
        lines.append(line)
    lines += [f"{config.name:12} {config.label}" for config in CONFIGS if config.name in summary]
    lines.append(
        "ms/task: CPU per delivered task; PG: PostgreSQL's backends of the bench database and its shared "
        f"processes; CPU ceiling: the tasks/s the machine's {cores} cores would carry at emrtasks' and "
        "PostgreSQL's CPU per task if nothing else ran; busy cores: the machine's, of {cores}; others': "
        "busy cores the bench's processes did not use"
    )
    return "\n".join(lines)


def projection(summary: dict[str, dict[str, dict[str, Any]]], headroom: float = 0.7) -> dict[str, Any]:
    """Tasks/s one PostgreSQL server carries per core, from its CPU per task (the baseline's),
    if its CPU were the only limit and it were kept at `headroom` of its cores."""
    base = summary.get("serve") or next(iter(summary.values()))
    ms = base["pg_ms_per_task"]["median"]
    per_core = 1000 / ms if ms else 0.0
    return {
        "pg_ms_per_task": ms,
        "tasks_per_s_per_core_at_100_percent": round(per_core),
        "headroom": headroom,
        "tasks_per_s_by_cores": {cores: round(per_core * cores * headroom) for cores in (2, 4, 8, 16, 32)},
    }


def describe(found: dict[str, Any]) -> str:
    rows = ", ".join(f"{cores} cores ~{rate:,}" for cores, rate in found["tasks_per_s_by_cores"].items())
    return (
        f"projection: PostgreSQL spends {found['pg_ms_per_task']:.2f} ms of CPU per task, so one core "
        f"carries ~{found['tasks_per_s_per_core_at_100_percent']:,} tasks/s flat out; at "
        f"{found['headroom']:.0%} of its cores: {rows} tasks/s"
    )


# -- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per configuration (default 3; 1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="one run of 200 tasks per configuration")
    parser.add_argument(
        "--n", type=int, default=None, help="tasks per drain (default 1000; 200 with --quick)"
    )
    parser.add_argument(
        "--configs",
        default=",".join(c.name for c in CONFIGS),
        help="comma-separated, of: " + ", ".join(c.name for c in CONFIGS),
    )
    parser.add_argument("--out", type=Path, default=harness.BENCH_DIR / "results", help="where results go")
    parser.add_argument(
        "--set", action="append", default=[], metavar="EMRTASKS_X=VALUE", help="an extra setting"
    )
    parser.add_argument(
        "--table", type=Path, metavar="RESULTS.json", help="print a results file's table; run nothing"
    )
    return parser.parse_args(argv)


def print_table(path: Path) -> int:
    document = json.loads(path.read_text())
    print(f"{path}: {document['runs']} run(s) of {document['n']} tasks per configuration, median [min-max]")
    summary = summarise(document["results"])  # from the raw runs: figures added since are shown too
    print(table(summary, document["machine"]["cpus"]))
    print(describe(projection(summary)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        return print_table(args.table)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    n = args.n if args.n is not None else (200 if args.quick else 1000)
    chosen = [c for c in CONFIGS if c.name in args.configs.split(",")]
    extra_env = dict(item.split("=", 1) for item in args.set)
    started, results = time.monotonic(), []
    for index in range(runs):
        for config in chosen:
            log(f"[run {index + 1}/{runs}] {config.label}: {n} tasks, {CONCURRENCY} connections")
            result = {"run": index + 1, **run_once(config, n, extra_env)}
            results.append(result)
            found = figures(result)
            log(
                f"  {found['tasks_per_s']:.0f} tasks/s, emrtasks {found['emrtasks_ms_per_task']:.2f} "
                f"ms/task, PostgreSQL {found['pg_ms_per_task']:.2f} ms/task, "
                f"{found['transactions_per_task']:.1f} transactions/task, {found['machine_busy_cores']:.2f} "
                f"cores busy ({found['others_cores']:.2f} of them by others)"
                + ("" if found["complete"] else "  INCOMPLETE: some webhooks missing")
            )
    summary = summarise(results)
    document = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "runs": runs,
        "n": n,
        "concurrency": CONCURRENCY,
        "machine": bench_run.machine(),
        "pinned": False,
        "configs": [dataclasses.asdict(c) for c in chosen],
        "service_env": harness.service_env("postgres", Path("<temp dir>"), extra_env, SCRATCH_DB),
        "summary": summary,
        "projection": projection(summary),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = ("-quick" if args.quick else "") + ("-custom" if extra_env else "")
    path = args.out / f"{document['date']}-scaleout{suffix}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    log(f"wrote {path} ({time.monotonic() - started:.0f} s)")
    print_table(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
