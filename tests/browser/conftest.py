"""Browser tests: Debian's Chromium, driven by Playwright, against `emrtasks serve` on loopback.

Playwright's own browser download cannot work here; the browser is `chromium` from apt (`.ci/run`
installs it). With EMRTASKS_SCREENSHOTS=1 the tests save the screenshots docs/link.md shows."""

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Service

NO_PLAYWRIGHT = "the playwright package is not installed (pip install -e '.[dev]')"
try:
    from playwright import sync_api
except ImportError:  # the test modules skip, saying so
    sync_api = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module: while Playwright's sync API runs, it holds an event loop, which the
    async tests of other modules must not meet."""
    if sync_api is None:
        pytest.skip(NO_PLAYWRIGHT)
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    opened = browser.new_context(viewport={"width": 1280, "height": 860})
    yield opened
    opened.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def screenshot(page: Any, name: str) -> None:
    """Saved for the docs only when asked, so a test run does not change the tree."""
    if os.environ.get("EMRTASKS_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"link-{name}.png"))


class Client:
    """A client app as the service sees it: its credentials, and the JSON API it calls."""

    def __init__(self, service: Service, name: str) -> None:
        self.service = service
        self.credentials = service.cli("clients", "create", "--name", name)
        self.http = httpx.Client(base_url=service.url, timeout=30)

    @property
    def client_id(self) -> str:
        return self.credentials["client_id"]

    def allow(self, origin: str) -> None:
        self.service.cli("clients", "update", "--client-id", self.client_id, "--allowed-origin", origin)

    def link_token(self, **body: str) -> str:
        answer = self.http.post(
            "/v1/link/token/create",
            json={"user_id": "u-1", "org_id": "clinic-1", **body},
            headers=self.credentials,
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    def exchange(self, public_token: str) -> str:
        answer = self.http.get(
            "/v1/link/token/exchange", params={"public_token": public_token}, headers=self.credentials
        )
        assert answer.status_code == 200, answer.text
        access_token: str = answer.json()["token"]
        return access_token

    def task_outcome(self, access_token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a task with this access token and wait for it to leave `processing`."""
        headers = {**self.credentials, "access_token": access_token}
        accepted = self.http.post("/v1/tasks", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            task: dict[str, Any] = self.http.get(
                f"/v1/tasks/{accepted.json()['task_id']}", headers=headers
            ).json()["task"]
            if task["status"] != "processing":
                return task
            time.sleep(0.05)
        raise AssertionError("the task never finished")


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    env = {
        "EMRTASKS_KEY_FILE": str(tmp_path / "emrtasks.key"),
        **os.environ,
        "EMRTASKS_DATABASE_URL": db_url,
        "EMRTASKS_SQLITE_SYNCHRONOUS": "NORMAL",
        "EMRTASKS_LOG_LEVEL": "DEBUG",
        "EMRTASKS_ACCESS_LOG": "true",
    }
    found = Service(env, tmp_path)
    found.env["EMRTASKS_PUBLIC_URL"] = found.url
    found.start()
    yield found
    found.stop()


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    found = Client(service, "Example Scribe")
    yield found
    found.http.close()


def write_json(path: Path, value: dict[str, Any]) -> Path:
    path.write_text(json.dumps(value))
    return path
