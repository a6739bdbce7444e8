"""How long one write takes through the gnuhealth adapter against a real GNU Health on this machine:
`python -m tests.gnuhealth.bench [--writes 50]` prints the median and p95 of `create_task` (the lookup
by marker, the professionals' check and the appointment's create: three JSON-RPC calls), one at a time,
after one warm-up write that also logs in. `--emr gnuhealth_web` measures the same write driven through
GNU Health's web client in headless Chromium (its warm-up also starts the browser)."""

import argparse
import asyncio
import statistics
import time

import httpx

from emrtasks.domain import directory, outcomes, tasks
from emrtasks.emr import base, gnuhealth, gnuhealth_web, screens
from tests.gnuhealth import seed, setup

REQUEST = tasks.TaskRequest(
    description="Benchmark write: call the patient back about results.",
    patient_mrn="GH-1001",
    subject="Benchmark",
    assignee_user_id="dreyes",
)


async def measure(server: setup.Server, writes: int, emr: str = gnuhealth.NAME) -> list[float]:
    login, password, _ = seed.FRONT_DESK
    config = {"url": server.url, "database": server.database, "username": login, "password": password}
    connection = tasks.Connection("con_bench", "cli_bench", emr, emr, None, "active", {})
    module = gnuhealth_web if emr == gnuhealth_web.NAME else gnuhealth
    async with httpx.AsyncClient(timeout=30) as client:
        deps = base.AdapterDeps(sandbox_store=None, http=client)
        adapter = module.build(connection, base.with_defaults(gnuhealth.SETTINGS, config), deps)
        [patient] = await adapter.search_patients("GH-1001")
        await _write(adapter, patient, "task_bench_warmup")
        seconds = []
        for n in range(writes):
            started = time.perf_counter()
            await _write(adapter, patient, f"task_bench_{n}")
            seconds.append(time.perf_counter() - started)
    await screens.pool().close()
    return seconds


async def _write(adapter: base.Adapter, patient: directory.Patient, marker: str) -> None:
    outcome = await adapter.create_task(REQUEST, patient, marker)
    if not isinstance(outcome, outcomes.Created):
        raise RuntimeError(f"the write failed: {outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--emr", choices=(gnuhealth.NAME, gnuhealth_web.NAME), default=gnuhealth.NAME)
    args = parser.parse_args()
    reason = setup.missing()
    if reason:
        print(f"GNU Health cannot run here: {reason}")
        return 1
    with setup.serve() as server:
        seconds = asyncio.run(measure(server, args.writes, args.emr))
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    label = "gnuhealth (API)" if args.emr == gnuhealth.NAME else "gnuhealth_web (SAO in Chromium)"
    print(f"{label}: {len(ms)} writes, median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
