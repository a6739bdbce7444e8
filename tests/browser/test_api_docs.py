"""`/docs` (Swagger UI) and `/redoc` in headless Chromium: both render the API's operations from our own
origin alone, under a Content-Security-Policy that the pages do not break."""

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Watch:
    """Every request the page makes, and every CSP violation or script error it reports."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(message.text)

    def foreign(self, origin: str) -> list[str]:
        return [
            url for url in self.requests if _origin(url) != origin and not url.startswith(("data:", "blob:"))
        ]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _offline(context: Any, origin: str) -> None:
    """Any request to another origin fails, as it would on a machine without a network."""
    context.route(
        "**/*", lambda route: route.continue_() if _origin(route.request.url) == origin else route.abort()
    )


def test_swagger_ui_renders_every_operation_from_our_origin_alone(service, context):
    _offline(context, service.url)
    page = context.new_page()
    watch = Watch(page)
    answer = page.goto(f"{service.url}/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/tasks" in {p.replace("\u200b", "").strip() for p in paths}
    assert len(paths) >= 20  # every documented operation, not a fragment
    page.locator(".opblock-summary-path", has_text="/v1/tasks/{task_id}").first.click()
    page.wait_for_selector("text=TaskResponse", timeout=10_000)
    assert watch.foreign(service.url) == []
    assert watch.problems == []


def test_redoc_renders_every_operation_from_our_origin_alone(service, context):
    _offline(context, service.url)
    page = context.new_page()
    watch = Watch(page)
    answer = page.goto(f"{service.url}/redoc")
    assert answer is not None and answer.status == 200
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    page.locator("h2", has_text="Create a task in the connection's EMR").wait_for(timeout=30_000)
    page.locator("h2", has_text="Revoke an access token").wait_for(timeout=10_000)
    assert page.locator("[data-section-id*='operation/']").count() >= 20
    assert watch.foreign(service.url) == []
    assert watch.problems == []


def test_an_unknown_docs_asset_is_404_with_the_contract_body(service):
    answer = httpx.get(f"{service.url}/docs/assets/nope.js", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
