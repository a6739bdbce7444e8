"""A real GNU Health (5.0, Tryton 7.0) on the local PostgreSQL for the tests: installed once into a cached
venv, initialised once into a template dump, restored per test session, served by `trytond` on loopback.

`python -m tests.gnuhealth.setup` (or `make gnuhealth`) installs and builds the template, and assembles
Tryton's web client (SAO, from npm: `sao/package-lock.json`) where Node is installed. `serve()` is what
the tests use, with the web client at `/` when it was assembled. The cache lives outside the repository
(`EMRTASKS_GNUHEALTH_CACHE`, by default `~/.cache/emrtasks-gnuhealth`); a new version list below makes a
new venv and template beside the old. Without PostgreSQL's client tools, a reachable server, or (before
the first install) gcc and libpq's headers, the tests skip naming what is missing; `.ci/run` sets
EMRTASKS_REQUIRE_GNUHEALTH so that CI fails instead.
"""

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("gnuhealth==5.0.6", "gnuhealth-calendar==5.0.5", "trytond>=7.0,<7.1", "psycopg2==2.9.13")
MODULES = ("health", "health_calendar")
ADMIN_PASSWORD = "admin-template-only"  # the template's admin; tests connect as the seeded users
REQUIRED = "EMRTASKS_REQUIRE_GNUHEALTH"
"""Set (as `.ci/run` does) to fail rather than skip when GNU Health cannot run here."""
PG_HOST = os.environ.get("EMRTASKS_GNUHEALTH_PGHOST", "127.0.0.1")
PG_PORT = os.environ.get("EMRTASKS_GNUHEALTH_PGPORT", "5432")
PG_USER = os.environ.get("EMRTASKS_GNUHEALTH_PGUSER", "postgres")
_PG = ("-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER)
_READY_SECONDS = 60
SAO_LOCK = Path(__file__).parent / "sao"
# bower_components/<name> as SAO's index.html loads them -> where the npm package keeps the same files.
SAO_LIBRARIES = {
    "bootstrap": "bootstrap",
    "c3": "c3",
    "d3": "d3/dist",
    "fullcalendar": "fullcalendar",
    "gettext.js": "gettext.js",
    "jquery": "jquery",
    "moment": "moment",
    "mousetrap": "mousetrap",
    "papaparse": "papaparse",
    "Sortable": "sortablejs",
}


def cache_dir() -> Path:
    return Path(os.environ.get("EMRTASKS_GNUHEALTH_CACHE") or Path.home() / ".cache" / "emrtasks-gnuhealth")


def _version_key() -> str:
    """Changes whenever the packages, the modules or the seed change: a new venv and template."""
    seed = (Path(__file__).parent / "seed.py").read_bytes()
    text = "\n".join((*PACKAGES, *MODULES)).encode() + seed
    return hashlib.sha256(text).hexdigest()[:12]


def venv_dir() -> Path:
    return cache_dir() / f"venv-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:12]}"


def template_dump() -> Path:
    return cache_dir() / f"template-{_version_key()}.dump"


def missing() -> str | None:
    """Why GNU Health cannot run here, or None."""
    for tool in ("pg_isready", "createdb", "dropdb", "pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (GNU Health needs PostgreSQL's client tools)"
    ready = subprocess.run(["pg_isready", "-q", "-h", PG_HOST, "-p", PG_PORT], check=False)
    if ready.returncode != 0:
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}"
    if _installed():
        return None
    if shutil.which("gcc") is None:
        return "gcc is not installed (psycopg2 builds from source for GNU Health)"
    if shutil.which("pg_config") is None or not _libpq_headers():
        return "libpq's headers are missing (apt-get install libpq-dev)"
    return None


def skip_or_fail() -> None:
    """Skip the calling test when GNU Health cannot run here; fail instead where it is required."""
    import pytest

    reason = missing()
    if reason and os.environ.get(REQUIRED):
        pytest.fail(f"{REQUIRED} is set but {reason}")
    if reason:
        pytest.skip(reason)


def _libpq_headers() -> bool:
    found = subprocess.run(["pg_config", "--includedir"], capture_output=True, text=True, check=False)
    return (Path(found.stdout.strip()) / "libpq-fe.h").is_file()


def _installed() -> bool:
    return (venv_dir() / "installed").is_file()


def install() -> Path:
    """The cached venv with GNU Health in it (made once; about 30 s)."""
    venv = venv_dir()
    if _installed():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PACKAGES], check=True)
    (venv / "installed").write_text("\n".join(PACKAGES) + "\n")
    return venv


def template() -> Path:
    """The initialised and seeded database as a `pg_dump -Fc` file (built once; about a minute)."""
    dump = template_dump()
    if dump.is_file():
        return dump
    venv = install()
    name = f"emrtasks_gh_build_{uuid.uuid4().hex[:8]}"
    _createdb(name)
    try:
        with tempfile.TemporaryDirectory() as work:
            conf = _write_conf(Path(work), 0)
            passfile = Path(work) / "admin-password"
            passfile.write_text(ADMIN_PASSWORD)
            admin = [str(venv / "bin" / "trytond-admin"), "-c", str(conf), "-d", name, "--all"]
            modules = ["-u", *MODULES, "--activate-dependencies", "--email", "admin@example.test"]
            env = {**os.environ, "TRYTONPASSFILE": str(passfile)}
            _run([*admin, *modules], env=env)
            with _trytond(venv, name, Path(work)) as url:
                from tests.gnuhealth import seed

                seed.seed(url, name, ADMIN_PASSWORD)
        partial = dump.with_suffix(".partial")
        subprocess.run(["pg_dump", *_PG, "-Fc", "-f", str(partial), name], check=True)
        partial.rename(dump)
    finally:
        _dropdb(name)
    return dump


def sao_missing() -> str | None:
    """Why the web client cannot be assembled here, or None."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node and npm are not installed (SAO, the web client, comes from npm)"
    return None


def sao_root() -> Path:
    """SAO 7.0 with the browser libraries its bower.json names, laid out as its index.html expects.
    Installed with `--ignore-scripts`: its postinstall runs bower, which fetches from outside npm."""
    lock = (SAO_LOCK / "package-lock.json").read_bytes()
    home = cache_dir() / f"sao-{hashlib.sha256(lock).hexdigest()[:12]}"
    root = home / "root"
    if (root / "index.html").is_file():
        return root
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(SAO_LOCK / name, home / name)
    npm = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    _run(npm, env={**os.environ}, cwd=home)
    partial = home / "partial"
    partial.mkdir()
    modules = home / "node_modules"
    for entry in (modules / "tryton-sao").iterdir():
        (partial / entry.name).symlink_to(entry)
    (partial / "bower_components").mkdir()
    for name, package in SAO_LIBRARIES.items():
        (partial / "bower_components" / name).symlink_to(modules / package)
    partial.rename(root)
    return root


@dataclass(frozen=True)
class Server:
    url: str
    """The JSON-RPC root, without the database: `{url}/{database}/`."""
    database: str
    log: Path
    web: bool
    """Whether SAO is served at `{url}/` (`/#<database>/model/...`)."""


@contextlib.contextmanager
def serve() -> Iterator[Server]:
    """A fresh copy of the template, served by its own `trytond` on a free loopback port."""
    dump = template()
    web = sao_root() if sao_missing() is None else None
    name = f"emrtasks_gh_{uuid.uuid4().hex[:10]}"
    _createdb(name)
    try:
        subprocess.run(["pg_restore", *_PG, "--no-owner", "-d", name, str(dump)], check=True)
        with (
            tempfile.TemporaryDirectory(prefix="emrtasks-gnuhealth-") as work,
            _trytond(venv_dir(), name, Path(work), web) as url,
        ):
            yield Server(url, name, Path(work) / "trytond.log", web is not None)
    finally:
        _dropdb(name, wait=False)


@contextlib.contextmanager
def _trytond(venv: Path, database: str, work: Path, web: Path | None = None) -> Iterator[str]:
    port = _free_port()
    conf = _write_conf(work, port, web)
    log = open(work / "trytond.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(venv / "bin" / "trytond"), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(process, port, work / "trytond.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {(done.stdout + done.stderr)[-3000:]}")


def _write_conf(work: Path, port: int, web: Path | None = None) -> Path:
    (work / "data").mkdir(exist_ok=True)
    conf = work / "trytond.conf"
    conf.write_text(
        "[database]\n"
        f"uri = postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/\n"
        f"path = {work / 'data'}\n"
        "list = False\n"
        "[web]\n"
        f"listen = 127.0.0.1:{port}\n" + (f"root = {web}\n" if web else "")
    )
    return conf


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trytond stopped: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError("trytond did not start listening")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _createdb(name: str) -> None:
    subprocess.run(["createdb", *_PG, "-E", "UTF8", "-T", "template0", name], check=True)


def _dropdb(name: str, *, wait: bool = True) -> None:
    """Drop a database; without `wait`, in the background: PostgreSQL checkpoints on DROP DATABASE,
    which takes many seconds on a busy machine, and nothing waits for a test copy to be gone."""
    command = ["dropdb", *_PG, "--if-exists", "--force", name]
    if wait:
        subprocess.run(command, check=False, capture_output=True)
    else:
        quiet = subprocess.DEVNULL
        subprocess.Popen(command, stdout=quiet, stderr=quiet, start_new_session=True)


def main() -> int:
    reason = missing()
    if reason:
        print(f"GNU Health cannot run here: {reason}", file=sys.stderr)
        return 1
    started = time.monotonic()
    print(f"venv: {install()}")
    print(f"template: {template()} ({time.monotonic() - started:.0f} s)")
    no_sao = sao_missing()
    print(f"web client: {no_sao}" if no_sao else f"web client: {sao_root()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
