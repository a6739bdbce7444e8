"""The HTTP edge's cost: server CPU per request, read from /proc, for a plain app and for `serve`.

    python bench/edge.py [--requests 20000] [--rounds 5] [--concurrency 16] [--db sqlite|postgres]
                         [--only plain,healthz,noop,tasks,...] [--uvloop] [--granian]
                         [--base CHECKOUT] [--profile DIR]

Servers, each alone on core 0 (`taskset`), started once and kept up:

- `plain`: a plain FastAPI app (`GET /healthz` returning a JSON dict; `plain-noop`, `POST /noop`
  parsing the JSON body it is sent and returning a dict) on uvicorn with the same
  settings as `serve` (httptools, the asyncio loop, no access log, no server header);
- `serve`: `emrtasks serve --no-worker` with the benchmark's settings (bench/harness.py), so a
  worker's CPU is never counted; `healthz` is its `GET /healthz`, `noop` its `POST /v1/bench/noop`,
  `tasks` its `POST /v1/tasks` (a durable accept);
- `--uvloop`: also `plain` and `serve` on uvloop (`*-uvloop`), through `uvloop.install()`;
- `--granian`: also the plain app on granian (`plain-granian`), when granian can be imported;
- `--base CHECKOUT`: also `serve` of another checkout of this repository (`*-base`: before/after,
  interleaved, on the same database);
- `--profile DIR`: after the rounds, py-spy's raw samples of each target to DIR/<target>.txt.

The load generator is this process, on core 1: `--concurrency` keep-alive connections sending
back to back (bench/httpraw.py) until `--requests` answers have come back. Each round runs every
target once, in an order that rotates per round, so that noise from the neighbours falls on all of
them alike. For each target: the server's user + system CPU (its children's included) between the
first and the last answer over the answers (µs per request), and the answers per second of the
round (wall clock: a hint only, since neighbours share the machine). Printed: the median of the
rounds for each target, and each target's CPU per request against the plain app's.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness  # bench/harness.py: ports, settings, /proc CPU, the task body
from httpraw import Connection, encode_request

PLAIN_APP = """
import sys
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()

@app.get("/healthz")
async def healthz():
    return {"success": True, "status": "ok"}

@app.post("/noop", status_code=202)
async def noop(request: Request):
    return {"success": True, "echo": isinstance(await request.json(), dict)}

port, server = int(sys.argv[1]), sys.argv[2]
if server == "granian":
    from granian import Granian
    from granian.constants import Interfaces
    Granian("__main__:app", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=1,
            log_access=False).serve()
else:
    loop = "uvloop" if server == "uvloop" else "asyncio"
    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop=loop, access_log=False,
                server_header=False, log_level="warning", lifespan="off")
"""

UVLOOP_SERVE = "import sys, uvloop; uvloop.install(); from emrtasks.cli import main; sys.exit(main())"


@dataclass
class Target:
    name: str
    server: str
    request: bytes
    cpu_us: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]


def start_plain(kind: str, tmp: Path) -> Server:
    port = harness.free_port()
    script = tmp / "plain_app.py"
    script.write_text(PLAIN_APP)
    command = harness.pinned([harness.PYTHON, str(script), str(port), kind], harness.SERVICE_CORE)
    process = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return Server(f"plain-{kind}" if kind != "asyncio" else "plain", port, process)


def start_serve(stack: "Service", loop: str, source: str | None = None) -> Server:
    """`serve --no-worker` on `loop`; of the code under `source` (a checkout's root) when given."""
    port = harness.free_port()
    env = stack.env if source is None else {**stack.env, "PYTHONPATH": str(Path(source) / "src")}
    args = ["serve", "--no-worker", "--port", str(port)]
    head = ["-c", UVLOOP_SERVE] if loop == "uvloop" else ["-m", "emrtasks"]
    log = open(stack.tmp / f"serve-{loop}-{port}.log", "wb")  # noqa: SIM115 (kept open for the child)
    process = subprocess.Popen(
        harness.pinned([harness.PYTHON, *head, *args], harness.SERVICE_CORE),
        env=env,
        cwd=stack.tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    name = "serve" if loop == "asyncio" else f"serve-{loop}"
    return Server(name if source is None else f"{name}-base", port, process)


class Service:
    """A database with one client and one connection, for `serve` processes to share."""

    def __init__(self, db: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="emrtasks-edge-"))
        env = {key: value for key, value in os.environ.items() if not key.startswith("EMRTASKS_")}
        env["PYTHONPATH"] = str(harness.BENCH_DIR.parent / "src")  # this checkout's code, from any cwd
        self.env = {**env, **harness.service_env(db, self.tmp, {})}
        if db == "postgres":
            harness.recreate_pg_database()
        self.run("db", "upgrade")
        self.headers = harness.provision_sandbox(lambda *args: json.loads(self.run(*args)), "edge")

    def run(self, *args: str) -> bytes:
        done = subprocess.run(
            [harness.PYTHON, "-m", "emrtasks", *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"emrtasks {' '.join(args)}: {done.stderr.decode()[-2000:]}")
        return done.stdout


def wait_up(server: Server, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        try:
            if harness.http_json(server.port, "GET", path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not start within 60 s")


async def load(port: int, raw: bytes, requests: int, concurrency: int) -> tuple[int, float]:
    """Send `raw` until `requests` answers came back; the count of non-2xx answers and the seconds."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    left, refused = requests, 0
    started = time.perf_counter()

    async def client(connection: Connection) -> None:
        nonlocal left, refused
        while left > 0:
            left -= 1
            status, _ = await connection.request(raw)
            refused += not 200 <= status < 300

    await asyncio.gather(*(client(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return refused, elapsed


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (granian serves from a worker process of its own)."""
    total = harness.cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += tree_cpu_seconds(int(child))
    return total


def measure(target: Target, server: Server, args: argparse.Namespace) -> None:
    asyncio.run(load(server.port, target.request, min(2000, args.requests), args.concurrency))  # warm-up
    before = tree_cpu_seconds(server.process.pid)
    refused, elapsed = asyncio.run(load(server.port, target.request, args.requests, args.concurrency))
    used = tree_cpu_seconds(server.process.pid) - before
    if refused:
        raise RuntimeError(f"{target.name}: {refused} answers were not 2xx")
    target.cpu_us.append(used / args.requests * 1e6)
    target.rps.append(args.requests / elapsed)


def profile(target: Target, server: Server, args: argparse.Namespace) -> None:
    """py-spy's samples of the server while it answers `--requests` of `target`: DIR/<name>.txt."""
    out = Path(args.profile) / f"{target.name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "-p", str(server.process.pid), "-f", "raw", "-r", "400", "-o", str(out)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    asyncio.run(load(server.port, target.request, args.requests, args.concurrency))
    spy.send_signal(2)
    spy.wait(timeout=60)
    print(f"profile of {target.name}: {out}")


def targets_for(servers: dict[str, Server], headers: dict[str, str]) -> list[Target]:
    body = json.dumps(harness.TASK_BODY).encode()
    found: list[Target] = []
    for name, server in servers.items():
        port = server.port
        if name.startswith("plain"):
            found.append(Target(name, name, encode_request("GET", "/healthz", port, {})))
            found.append(Target(f"{name}-noop", name, encode_request("POST", "/noop", port, {}, body)))
            continue
        suffix = name.removeprefix("serve")
        found.append(Target(f"healthz{suffix}", name, encode_request("GET", "/healthz", port, {})))
        found.append(Target(f"noop{suffix}", name, encode_request("POST", "/v1/bench/noop", port, {}, body)))
        found.append(Target(f"tasks{suffix}", name, encode_request("POST", "/v1/tasks", port, headers, body)))
    return found


def report(targets: list[Target], args: argparse.Namespace) -> None:
    base = next((t for t in targets if t.name == "plain"), None)
    base_cpu = statistics.median(base.cpu_us) if base else None
    print(f"\n{args.requests} requests x {args.rounds} rounds, {args.concurrency} connections; medians")
    print(f"{'target':<16} {'CPU µs/req':>11} {'vs plain':>9} {'req/s':>8}   rounds (µs)")
    for target in targets:
        cpu = statistics.median(target.cpu_us)
        ratio = f"{cpu / base_cpu:.2f}x" if base_cpu else "-"
        rounds = " ".join(f"{value:.0f}" for value in target.cpu_us)
        print(f"{target.name:<16} {cpu:>11.1f} {ratio:>9} {statistics.median(target.rps):>8.0f}   {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--granian", action="store_true")
    parser.add_argument("--base", metavar="CHECKOUT", help="also `serve` of another checkout (*-base)")
    parser.add_argument("--profile", metavar="DIR", help="then py-spy each target (needs py-spy on PATH)")
    args = parser.parse_args()
    if (os.cpu_count() or 1) > harness.LOAD_CORE:
        os.sched_setaffinity(0, {harness.LOAD_CORE})
    service = Service(args.db)
    servers = [start_plain("asyncio", service.tmp), start_serve(service, "asyncio")]
    if args.base:
        servers.append(start_serve(service, "asyncio", args.base))
    if args.uvloop:
        servers += [start_plain("uvloop", service.tmp), start_serve(service, "uvloop")]
    if args.granian:
        servers.append(start_plain("granian", service.tmp))
    try:
        for server in servers:
            wait_up(server, "/healthz")
        targets = targets_for({server.name: server for server in servers}, service.headers)
        if args.only:
            targets = [target for target in targets if target.name in args.only.split(",")]
        by_name = {server.name: server for server in servers}
        for round_ in range(args.rounds):
            shift = round_ % len(targets)
            for target in targets[shift:] + targets[:shift]:
                measure(target, by_name[target.server], args)
            print(
                f"round {round_ + 1}: " + ", ".join(f"{t.name} {t.cpu_us[-1]:.0f}" for t in targets),
                flush=True,
            )
        report(targets, args)
        if args.profile:
            for target in targets:
                profile(target, by_name[target.server], args)
    finally:
        for server in servers:
            harness._stop(server.process)
        if args.db == "postgres":
            harness.drop_pg_database()


if __name__ == "__main__":
    sys.exit(main())
