"""An EMR that answers badly (HTML where JSON was due, JSON of the wrong shape, a body cut short, a
connection closed mid-body): the API's reads answer 502 emr_error naming it, never 500; a task's job
retries a read and leaves a write that may have happened `unknown`, with the EMR's status on the job."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from emrtasks.queue import jobs
from emrtasks.service import admin, create_task

FHIR_JSON = b"application/fhir+json"
PATIENT_BUNDLE = (
    b'{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"p1",'
    b'"identifier":[{"system":"urn:mrn","value":"MRN-1001"}],"name":[{"family":"Thompson","given":["Ava"]}]}}]}'
)


def _answer(status: int, content_type: bytes, body: bytes, *, length: int | None = None) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body) if length is None else length}\r\n"
    return head.encode() + b"Content-Type: " + content_type + b"\r\nConnection: close\r\n\r\n" + body


MALFORMED = {
    "html": _answer(200, b"text/html", b"<html><body>Service Temporarily Unavailable</body></html>"),
    "json_of_the_wrong_shape": _answer(200, FHIR_JSON, b'["Bundle", 1, null]'),
    "truncated_json": _answer(200, FHIR_JSON, PATIENT_BUNDLE[:40]),
    "connection_closed_mid_body": _answer(200, FHIR_JSON, PATIENT_BUNDLE[:40], length=len(PATIENT_BUNDLE)),
}


class RawEmr:
    """A loopback HTTP server that answers each request with the next canned bytes, then closes."""

    def __init__(self) -> None:
        self.answers: list[bytes] = []
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        self.requests.append(head + await reader.readexactly(length))
        writer.write(self.answers.pop(0) if self.answers else _answer(404, FHIR_JSON, b"{}"))
        await writer.drain()
        writer.close()


@pytest.fixture
async def raw_emr() -> AsyncIterator[tuple[RawEmr, str]]:
    emr = RawEmr()
    server = await asyncio.start_server(emr.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield emr, f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.fixture
async def fhir_headers(runtime, tenant, raw_emr) -> dict[str, str]:
    _emr, url = raw_emr
    created = await admin.create_connection(
        runtime.ctx,
        client_id=tenant.client_id,
        emr="fhir",
        rules=None,
        reference_id="clinic-fhir",
        settings={"base_url": url, "mrn_system": "urn:mrn", "access_token": "static-token"},
    )
    return tenant.headers(created.access_token)


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_emr_answer_to_a_patient_search_is_502_emr_error(api, raw_emr, fhir_headers, kind):
    emr, _url = raw_emr
    emr.answers.append(MALFORMED[kind])
    answer = await api.get("/v1/patients", params={"mrn": "MRN-1001"}, headers=fhir_headers)
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert (body["success"], body["error"]) == (False, "emr_error")
    assert body["message"].startswith("The EMR could not be searched: ")


async def test_the_502_names_what_the_emr_sent_and_its_status(api, raw_emr, fhir_headers):
    emr, _url = raw_emr
    emr.answers.append(MALFORMED["html"])
    answer = await api.get("/v1/users", headers=fhir_headers)
    assert answer.status_code == 502
    assert answer.json()["message"] == (
        "The EMR's directory could not be read: "
        "The EMR answered the user list with HTTP 200 and a body that is not JSON (text/html)."
    )


async def test_a_good_answer_after_a_bad_one_is_read(api, raw_emr, fhir_headers):
    emr, _url = raw_emr
    emr.answers += [MALFORMED["truncated_json"], _answer(200, FHIR_JSON, PATIENT_BUNDLE)]
    assert (await api.get("/v1/patients", headers=fhir_headers)).status_code == 502
    found = await api.get("/v1/patients", params={"mrn": "MRN-1001"}, headers=fhir_headers)
    assert found.status_code == 200
    assert [p["mrn"] for p in found.json()["patients"]] == ["MRN-1001"]


@pytest.mark.parametrize("kind", ["html", "json_of_the_wrong_shape", "truncated_json"])
async def test_a_write_answered_with_a_malformed_body_is_looked_up_not_written_again(
    api, runtime, raw_emr, fhir_headers, kind
):
    emr, _url = raw_emr
    absent = _answer(200, FHIR_JSON, b'{"resourceType":"Bundle","type":"searchset","entry":[]}')
    # patient search, then the create (answered badly), then the lookup by marker finds nothing...
    emr.answers += [
        _answer(200, FHIR_JSON, PATIENT_BUNDLE),
        MALFORMED[kind].replace(b" 200 ", b" 201 "),
        absent,
    ]
    task = {"description": "Call back about labs", "patient_mrn": "MRN-1001"}
    accepted = await api.post("/v1/tasks", json=task, headers=fhir_headers)
    assert accepted.status_code == 202, accepted.text
    await _attempt_once(runtime)
    job = (await api.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=fhir_headers)).json()["job"]
    assert job["state"] == "queued", job
    assert job["last_error_code"] == "OUTCOME_UNKNOWN", job
    assert "HTTP 201" in job["last_error"], job
    runtime.ctx.clock.advance(3600)
    await _attempt_once(runtime)  # the reconcile: it looks the Task up by marker before anything else
    assert [r.split(b" ")[1].split(b"?")[0] for r in emr.requests][:3] == [b"/Patient", b"/Task", b"/Task"]
    assert emr.requests[2].startswith(b"GET /Task?identifier=")


async def _attempt_once(runtime) -> None:
    [job] = await jobs.claim(
        runtime.engine, worker_id="tests", limit=1, lease_seconds=30, now=runtime.ctx.clock()
    )
    await create_task.run_create_task(runtime.ctx, job)
