"""`next` links in paginated EMR answers: resolved against the page they came from (relative or
absolute), and never followed off the EMR's origin, where our bearer token would go with them."""

import httpx
import pytest

from emrtasks.domain import outcomes
from emrtasks.emr import fhir
from emrtasks.emr import http as emr_http

BASE = "https://emr.example/api/v1"


def _reader(pages: dict[str, dict]):
    """A `read` for read_pages that serves pages by URL and records what was asked."""
    asked: list[str] = []

    async def read(url: str, params=None) -> dict:
        asked.append(url)
        return pages[url]

    return read, asked


@pytest.mark.parametrize(
    "link",
    ["https://emr.example/api/v1/tasks?cursor=2", "/api/v1/tasks?cursor=2", "tasks?cursor=2", "?cursor=2"],
)
async def test_read_pages_follows_a_relative_or_absolute_next_link(link):
    second = "https://emr.example/api/v1/tasks?cursor=2"
    read, asked = _reader(
        {
            f"{BASE}/tasks": {"results": [{"id": 1}], "next": link},
            second: {"results": [{"id": 2}], "next": None},
        }
    )
    found = await emr_http.read_pages(read, f"{BASE}/tasks", {"limit": 1}, max_pages=5)
    assert found == [{"id": 1}, {"id": 2}]
    assert asked == [f"{BASE}/tasks", second]


@pytest.mark.parametrize(
    "link",
    [
        "https://elsewhere.example/api/v1/tasks?cursor=2",
        "//elsewhere.example/x",
        "http://emr.example/api/v1/tasks",
    ],
)
async def test_read_pages_refuses_a_next_link_off_the_emrs_origin(link):
    read, asked = _reader({f"{BASE}/tasks": {"results": [{"id": 1}], "next": link}})
    with pytest.raises(outcomes.AdapterError) as caught:
        await emr_http.read_pages(read, f"{BASE}/tasks", {}, max_pages=5)
    assert caught.value.outcome.code == outcomes.EMR_REJECTED
    assert asked == [f"{BASE}/tasks"]


def _bundle(ids: list[str], following: str | None) -> dict:
    links = [{"relation": "next", "url": following}] if following else []
    entries = [{"resource": {"resourceType": "Practitioner", "id": i}} for i in ids]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


async def _search(pages: dict[str, dict]) -> tuple[list[str], list[str]]:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json=pages[str(request.url)])

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        found = await fhir.search(
            http,
            emr_http.StaticToken({}),
            "https://fhir.example/r4/Practitioner",
            "Practitioner",
            {"_count": "2"},
        )
    return [r["id"] for r in found], asked


@pytest.mark.parametrize(
    "link",
    [
        "https://fhir.example/r4/Practitioner?_count=2&_offset=2",
        "/r4/Practitioner?_count=2&_offset=2",
        "Practitioner?_count=2&_offset=2",
    ],
)
async def test_a_fhir_search_follows_relative_and_absolute_next_links_with_their_query(link):
    first = "https://fhir.example/r4/Practitioner?_count=2"
    second = "https://fhir.example/r4/Practitioner?_count=2&_offset=2"
    ids, asked = await _search({first: _bundle(["a", "b"], link), second: _bundle(["c"], None)})
    assert ids == ["a", "b", "c"]
    assert asked == [first, second]


async def test_a_fhir_search_refuses_a_next_link_to_another_host():
    first = "https://fhir.example/r4/Practitioner?_count=2"
    with pytest.raises(outcomes.AdapterError) as caught:
        await _search({first: _bundle(["a"], "https://attacker.example/r4/Practitioner?_offset=2")})
    assert "attacker.example" in caught.value.outcome.description
