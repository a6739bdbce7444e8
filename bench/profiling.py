"""py-spy profiles of the running `serve` process, and what its threads wait for: record, summarise, draw.

During a profiled phase, three samplers watch the service (py-spy pinned to the load generator's core,
both py-spy recorders in `--nonblocking` mode so the service is never paused):

- `cpu`: py-spy `--gil`: at each sample, the thread holding the GIL, i.e. the Python code running
  (C code that releases the GIL, such as SQLite executing a statement, is not in it: the CPU of
  each kind of thread is read from /proc instead). Summarised as the top functions by own time
  (the innermost Python frame of each sample), overall and per path (the accept path under
  uvicorn/FastAPI, the worker's create_task and deliver_webhook jobs, the queue). py-spy's default
  mode, which checks every thread for activity, halved the service's throughput here; `--gil` and
  `--idle` in `--nonblocking` mode cost it little.
- `wall`: py-spy `--idle`: every thread at every sample, waiting or not (a flamegraph only).
- `ThreadStates`: every 20 ms, each thread's state and the kernel function it sleeps in, from /proc
  (`/proc/<pid>/task/<tid>/stat` and `wchan`): running, idle in epoll_wait, waiting on a futex,
  asleep in nanosleep (in an aiosqlite connection thread that is SQLite's busy handler, waiting for
  the write lock), waiting for the disk. Threads are named from py-spy's `--threads` output.

Each py-spy recording is kept as collapsed stacks (`.txt`: one `frame;frame;... count` per line,
which speedscope.app and flamegraph.pl read) and drawn as a self-contained flamegraph `.svg`.
"""

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from harness import LOAD_CORE, PYTHON, pinned

Stack = tuple[list[str], int]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_THREAD = re.compile(r"^thread \((?:0x)?[0-9a-fA-F]+\): (.*)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    """The py-spy executable, installed with pip when it is missing."""
    beside = Path(PYTHON).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    print("py-spy not found: pip install py-spy", file=sys.stderr)
    subprocess.run([PYTHON, "-m", "pip", "install", "py-spy"], check=True, timeout=600)
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


class Recorder:
    """One `py-spy record` of a process: for `duration` seconds, or until stop()."""

    def __init__(self, pid: int, path: Path, *, wall: bool, rate: int, duration: float | None = None):
        self.path = path
        command = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads"]
        command += ["--output", str(path)]
        command += ["--nonblocking", "--idle" if wall else "--gil"]
        if duration is not None:
            command += ["--duration", str(max(1, round(duration)))]
        self.command = pinned(command, LOAD_CORE)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self, timeout: float = 120.0) -> None:
        """Wait for the recording to end (sending SIGINT first when it has no duration)."""
        assert self.process is not None
        if "--duration" not in self.command and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate(timeout=10)
        if not self.path.exists():
            raise RuntimeError(f"py-spy wrote nothing to {self.path}: {err.decode()[-1500:]}")


# -- reading collapsed stacks ------------------------------------------------------------------------------


def thread_label(name: str) -> str:
    """Threads of the same kind under one name: the 16 aiosqlite connection threads become one."""
    if "_connection_worker_thread" in name:
        return "thread: aiosqlite connection"
    if name.startswith("AnyIO worker"):
        return "thread: AnyIO worker (threadpool)"
    if name == "MainThread":
        return "thread: MainThread (event loop)"
    return "thread: " + re.sub(r"[-_ ]?\d+", "", name)


def load(path: Path) -> list[Stack]:
    stacks: list[Stack] = []
    for line in path.read_text().splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        frames = text.split(";")
        matched = _THREAD.match(frames[0])
        frames = [thread_label(matched.group(1)) if matched else "thread: ?", *frames[1:]]
        stacks.append((frames, int(count)))
    return stacks


def is_python(frame: str) -> bool:
    matched = _FRAME.match(frame)
    return bool(matched and matched.group("line") and not matched.group("file").endswith((".c", ".h")))


def split_frame(frame: str) -> tuple[str, str, int]:
    """(function, file, line) of a frame; line 0 when it has none."""
    matched = _FRAME.match(frame)
    if not matched:
        return frame, "", 0
    return matched.group("function"), matched.group("file"), int(matched.group("line") or 0)


def path_of(frames: list[str]) -> str:
    """Which part of the service a sample belongs to, from the modules on its stack."""
    joined = ";".join(frames)
    if not frames[0].startswith("thread: MainThread"):
        return frames[0].removeprefix("thread: ")
    if "GroupCommitter" in joined:  # its own task runs the batched writes of every caller
        return "group commit: batched writes (accept, settle, attempts, sandbox)"
    if "emrtasks/service/create_task.py" in joined:
        return "worker: create_task job"
    if "emrtasks/service/webhook_delivery.py" in joined:
        return "worker: deliver_webhook job"
    if "emrtasks/queue/" in joined:
        return "worker: claim / heartbeat / reaper"
    if any(mark in joined for mark in ("uvicorn/protocols/http", "starlette/", "fastapi/", "emrtasks/api/")):
        return "accept: HTTP + POST /v1/tasks"
    if len(frames) > 1 and not frames[1].startswith(("_run_module_as_main", "<module>")):
        # a stack cut short: almost always the database layer (asyncpg's statement execution, or
        # SQLAlchemy's greenlets where they are still used), read while its caller was not linked
        return "database layer, caller not visible"
    return "event loop (polling, callbacks)"


def _leaf_python(frames: list[str]) -> str | None:
    for frame in reversed(frames):
        if is_python(frame):
            return frame
    return None


def top_own(stacks: list[Stack], count: int = 15) -> list[dict[str, Any]]:
    """Functions by own time (the innermost Python frame of each sample), with their hottest line."""
    total = sum(samples for _frames, samples in stacks) or 1
    by_function: Counter[tuple[str, str]] = Counter()
    by_line: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for frames, samples in stacks:
        leaf = _leaf_python(frames)
        function, file, line = split_frame(leaf) if leaf else ("<no Python frame>", frames[0], 0)
        by_function[(function, file)] += samples
        by_line[(function, file)][line] += samples
    rows = []
    for (function, file), samples in by_function.most_common(count):
        line = by_line[(function, file)].most_common(1)[0][0]
        rows.append(
            {
                "function": function,
                "where": f"{file}:{line}" if line else file,
                "samples": samples,
                "share": round(samples / total, 4),
            }
        )
    return rows


def package_of(frame: str | None) -> str:
    """The top-level package (or stdlib module) of a frame's file: sqlalchemy, asyncio, emrtasks..."""
    if frame is None:
        return "(no Python frame)"
    file = split_frame(frame)[1]
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if head else "?"


def top_inclusive(stacks: list[Stack], prefix: str = "emrtasks/", count: int = 15) -> list[dict[str, Any]]:
    """Our functions by inclusive time (samples with the function anywhere on the stack). Code that
    runs inside SQLAlchemy's greenlets is not linked to its caller, so these undercount the SQL part."""
    total = sum(samples for _frames, samples in stacks) or 1
    inclusive: Counter[str] = Counter()
    for frames, samples in stacks:
        seen = set()
        for frame in frames:
            function, file, _line = split_frame(frame)
            if file.startswith(prefix) and (function, file) not in seen:
                seen.add((function, file))
                inclusive[f"{function}  ({file})"] += samples
    return [
        {"function": name, "samples": samples, "share": round(samples / total, 4)}
        for name, samples in inclusive.most_common(count)
    ]


def cpu_summary(stacks: list[Stack]) -> dict[str, Any]:
    total = sum(samples for _frames, samples in stacks)
    by_path: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for frames, samples in stacks:
        by_path[path_of(frames)] += samples
        by_package[package_of(_leaf_python(frames))] += samples
    accept = [(f, s) for f, s in stacks if path_of(f).startswith("accept")]
    worker = [(f, s) for f, s in stacks if path_of(f).startswith("worker")]
    return {
        "samples": total,
        "by_path": {name: round(samples / (total or 1), 4) for name, samples in by_path.most_common()},
        "by_package": {
            name: round(samples / (total or 1), 4) for name, samples in by_package.most_common(12)
        },
        "top_inclusive_emrtasks": top_inclusive(stacks),
        "top_own": top_own(stacks, 15),
        "top_own_accept_path": top_own(accept, 10),
        "top_own_worker_path": top_own(worker, 10),
    }


# -- what the threads wait for ------------------------------------------------------------------------------


def state_name(state: str, wchan: str) -> str:
    """A thread's state from /proc: `R`, or the kernel function it sleeps in (`wchan`)."""
    if state == "R":
        return "running"
    if "epoll" in wchan:
        return "idle in epoll_wait"
    if "futex" in wchan:
        return "waiting on a futex (lock, queue, GIL)"
    if "nanosleep" in wchan or "hrtimer" in wchan:
        return "asleep in nanosleep"
    if state == "D":
        return f"uninterruptible ({wchan})"
    return f"sleeping ({wchan})" if wchan and wchan != "0" else "sleeping"


class ThreadStates(threading.Thread):
    """Samples every thread's state and system call from /proc, every `every` seconds, until stopped."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every = every
        self.counts: dict[int, Counter[str]] = defaultdict(Counter)
        self.ticks = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        tasks = Path(f"/proc/{self.pid}/task")
        while not self._stop_event.wait(self.every):
            self.ticks += 1
            try:
                tids = [entry.name for entry in tasks.iterdir()]
            except OSError:
                return
            for tid in tids:
                try:
                    state = (tasks / tid / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    wchan = (tasks / tid / "wchan").read_text().strip()
                except (OSError, IndexError):
                    continue
                self.counts[int(tid)][state_name(state, wchan)] += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def summary(self, names: dict[int, str]) -> dict[str, Any]:
        """Per kind of thread: how many, and the share of their time in each state."""
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        threads: Counter[str] = Counter()
        for tid, counts in self.counts.items():
            kind = names.get(tid, "thread: short-lived (gone before it was named)").removeprefix("thread: ")
            by_kind[kind].update(counts)
            threads[kind] += 1
        result: dict[str, Any] = {}
        for kind, counts in sorted(by_kind.items(), key=lambda item: -sum(item[1].values())):
            total = sum(counts.values())
            result[kind] = {
                "threads": threads[kind],
                "threads_on_average": round(total / max(self.ticks, 1), 2),
                "states": {state: round(count / total, 4) for state, count in counts.most_common()},
            }
        return result


# -- drawing ----------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "count", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.children: dict[str, _Node] = {}


def flamegraph_svg(stacks: list[Stack], title: str, path: Path, width: int = 1400) -> None:
    """A flamegraph (root at the bottom, width = samples) as one SVG file, tooltips on every frame."""
    root = _Node("all")
    for frames, samples in stacks:
        root.count += samples
        node = root
        for frame in frames:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += samples
    depth = _depth(root)
    row, pad, top = 17, 10, 40
    height = top + (depth + 1) * row + pad
    scale = (width - 2 * pad) / max(root.count, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="Verdana, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{html.escape(title)}</text>',
    ]

    def draw(node: _Node, x: float, level: int) -> None:
        w = node.count * scale
        if w < 0.3:
            return
        y = height - pad - (level + 1) * row
        share = 100 * node.count / max(root.count, 1)
        label = html.escape(node.name)
        hue = zlib.crc32(node.name.encode()) % 55
        fill = f"hsl({hue}, 80%, {60 + zlib.crc32(node.name[::-1].encode()) % 15}%)"
        parts.append(
            f"<g><title>{label} ({node.count} samples, {share:.2f} %)</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.1):.1f}" height="{row - 1}" '
            f'fill="{fill}" rx="1"/>'
        )
        chars = int((w - 6) / 6.6)
        if chars >= 3:
            text = node.name if len(node.name) <= chars else node.name[: chars - 2] + ".."
            parts.append(f'<text x="{x + 3:.1f}" y="{y + row - 5}">{html.escape(text)}</text>')
        parts.append("</g>")
        child_x = x
        for child in sorted(node.children.values(), key=lambda item: item.name):
            draw(child, child_x, level + 1)
            child_x += child.count * scale

    draw(root, pad, 0)
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def _depth(node: _Node) -> int:
    deepest, todo = 0, [(node, 0)]
    while todo:
        current, level = todo.pop()
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in current.children.values())
    return deepest


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of a process, by thread id, from /proc."""
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return seconds


def thread_names(path: Path) -> dict[int, str]:
    """Thread id -> kind of thread, from the `thread (tid): name` roots py-spy wrote."""
    names: dict[int, str] = {}
    for line in path.read_text().splitlines():
        matched = _THREAD.match(line.split(";", 1)[0])
        if matched:
            tid = line.split("(", 1)[1].split(")", 1)[0]
            names[int(tid, 16) if tid.startswith("0x") else int(tid)] = thread_label(matched.group(1))
    return names


def dump_thread_names(pid: int) -> dict[int, str]:
    """Thread id -> kind of thread, for the threads alive now (one `py-spy dump --json`)."""
    done = subprocess.run(
        [py_spy(), "dump", "--pid", str(pid), "--json", "--nonblocking"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    try:
        threads = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {}
    return {int(t["os_thread_id"]): thread_label(str(t.get("thread_name") or "?")) for t in threads}


def cpu_by_thread(
    before: dict[int, float], after: dict[int, float], names: dict[int, str], seconds: float
) -> dict[str, float]:
    """Cores used by each kind of thread between two thread_cpu() snapshots."""
    used: dict[str, float] = defaultdict(float)
    for tid, cpu in after.items():
        label = names.get(tid, "thread: short-lived (gone before it was named)").removeprefix("thread: ")
        used[label] += cpu - before.get(tid, 0.0)
    ranked = sorted(used.items(), key=lambda item: -item[1])
    return {label: round(cpu / seconds, 3) for label, cpu in ranked if cpu > 0}


def summarise(cpu_path: Path, wall_path: Path, title: str) -> dict[str, Any]:
    """Both recordings of one phase: the CPU summary, and an SVG beside each collapsed-stack file."""
    cpu, wall = load(cpu_path), load(wall_path)
    flamegraph_svg(cpu, f"{title}: on-CPU samples", cpu_path.with_suffix(".svg"))
    flamegraph_svg(wall, f"{title}: wall clock, every thread (py-spy --idle)", wall_path.with_suffix(".svg"))
    return {
        "cpu": cpu_summary(cpu),
        "files": [  # names only: results carry no paths of the machine that made them
            p.name for p in (cpu_path, cpu_path.with_suffix(".svg"), wall_path, wall_path.with_suffix(".svg"))
        ],
    }
