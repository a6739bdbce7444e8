"""examples/link_app.py works: a client app with only its client credentials opens Link from its page,
gets the public token, exchanges it and creates a task that ends `created`."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.browser.conftest import NO_PLAYWRIGHT
from tests.contract import harness

sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "link_app.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("link_app", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_client_app_links_a_clinic_and_creates_a_task(page, client):
    example = _example().LinkApp(client.service.url, client.client_id, client.credentials["client_secret"])
    with harness.serve_fake(example) as app_url:
        client.allow(app_url)
        page.goto(app_url)
        page.get_by_role("button", name="Connect your EMR").click()
        frame = page.frame_locator("iframe[title='Link your EMR']")
        frame.get_by_role("button", name="Continue").click()  # the sandbox is chosen first
        frame.get_by_role("button", name="Connect").click()
        sync_api.expect(page.get_by_role("status")).to_have_text(re.compile(r"^Task task_\w+: created$"))
    assert len(example.access_tokens) == 1
    assert not any(token in page.content() for token in example.access_tokens)
