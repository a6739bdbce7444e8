"""Cobalt drop-in webhooks: a receiver written only from Cobalt's documented Node verifier
(`cobalt_receiver.js`, run with `node` on loopback) checks every delivery of a real `emrtasks serve`,
before and after a secret rotation, and a resent event too."""

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from emrtasks.webhooks import events, signing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed"),
]

RECEIVER_JS = Path(__file__).with_name("cobalt_receiver.js")
TASK = {
    "subject": "Follow-up appointment needed",
    "description": 'Résumé — 検査 "quoted" \\ / <b>&amp;</b> 😀\nsecond line\ttabbed',
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}


class NodeReceiver:
    """`node cobalt_receiver.js` on a free loopback port; `key` is the secret the client holds now."""

    def __init__(self, secret_file: Path) -> None:
        self.secret_file = secret_file
        self.key = ""
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._process = subprocess.Popen(["node", str(RECEIVER_JS), str(secret_file)], stdout=subprocess.PIPE)
        assert self._process.stdout is not None
        self.url = f"http://127.0.0.1:{json.loads(self._process.stdout.readline())['listening']}/webhook"
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def key(self) -> str:
        return self.secret_file.read_text()

    @key.setter
    def key(self, secret: str) -> None:
        self.secret_file.write_text(secret)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if not line.endswith(b"\n"):  # cut short when the process was stopped mid-write
                break
            seen = json.loads(line)
            seen["body"] = base64.b64decode(seen["body"])
            with self._lock:
                self.seen.append(seen)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.seen)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.deliveries()):
                return
            time.sleep(0.02)
        raise AssertionError(f"node receiver: condition not met; seen {self.deliveries()}")

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@pytest.fixture
def node_receiver(tmp_path: Path) -> Iterator[NodeReceiver]:
    receiver = NodeReceiver(tmp_path / "secret")
    yield receiver
    receiver.close()


@pytest.fixture
def hooks(service):
    service.env.update(
        {
            "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
            "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
            "EMRTASKS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2,0.5,0.5,1,1,1",
            "EMRTASKS_WORKER_POLL_SECONDS": "0.1",
        }
    )
    service.start()
    client = service.cli("clients", "create", "--name", "cobalt")
    connection = service.cli(
        "connections", "create", "--client-id", client["client_id"], "--reference-id", "clinic-7"
    )
    headers = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    with httpx.Client(base_url=service.url, timeout=10) as http:
        yield http, headers, {**headers, "access_token": connection["access_token"]}


def _standard_verifiers(delivery: dict[str, Any], secrets: list[str]) -> list[str]:
    good = []
    for secret in secrets:
        try:
            Webhook(secret).verify(delivery["body"], delivery["headers"])
            good.append(secret)
        except WebhookVerificationError:
            pass
    return good


def _count(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda seen: len(seen) >= n


# Delivery is the same code on both databases; one keeps the suite quick (as tests/e2e/test_webhooks.py).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cobalts_node_verifier_accepts_every_delivery_before_and_after_a_rotation(hooks, node_receiver):
    http, client_headers, headers = hooks
    registered = http.post("/v1/webhook", json={"webhook_url": node_receiver.url}, headers=client_headers)
    assert registered.status_code == 201, registered.text
    old = registered.json()["webhook_secret_key"]
    node_receiver.key = old
    created = http.post("/v1/tasks", json=TASK, headers=headers).json()
    failed = http.post("/v1/tasks", json={**TASK, "patient_mrn": "MRN-0404"}, headers=headers).json()
    node_receiver.wait_for(_count(2))

    webhook_id = registered.json()["webhook_id"]
    rotated = http.post(f"/v1/webhook/{webhook_id}/rotate-secret", headers=client_headers).json()
    new = rotated["webhook"]["secret"]
    node_receiver.key = new  # a Cobalt client switches its key when it rotates
    during_overlap = http.post("/v1/tasks", json=TASK, headers=headers).json()
    node_receiver.wait_for(_count(3))
    resent = http.post(
        f"/v1/webhook-events/{node_receiver.deliveries()[0]['headers']['webhook-id']}/retry",
        headers=client_headers,
    )
    assert resent.status_code == 202, resent.text
    node_receiver.wait_for(_count(4))

    seen = node_receiver.deliveries()
    assert [d["status"] for d in seen] == [200, 200, 200, 200]
    by_task = {json.loads(d["body"])["data"]["task_id"]: d for d in seen[:3]}
    assert set(by_task) == {created["task_id"], failed["task_id"], during_overlap["task_id"]}
    assert json.loads(by_task[created["task_id"]]["body"])["data"]["description"] == TASK["description"]
    assert json.loads(by_task[failed["task_id"]]["body"])["type"] == "task.failed"
    # The resend: the first event again, its next attempt number, signed with the new key.
    assert seen[3]["body"] == seen[0]["body"]
    assert (seen[0]["headers"]["webhook-attempt"], seen[3]["headers"]["webhook-attempt"]) == ("1", "2")
    # Standard Webhooks, beside it: both secrets verify during the overlap.
    assert [_standard_verifiers(d, [old, new]) for d in seen] == [[old], [old], [old, new], [old, new]]


def test_cobalts_node_verifier_refuses_another_key_a_changed_body_and_a_missing_header(node_receiver):
    secret = signing.new_secret()
    node_receiver.key = secret
    body = b'{"id":"evt_1","type":"task.created","data":{"task_id":"task_1"}}'
    good = signing.headers(
        secrets=[secret], msg_id="evt_1", timestamp=int(time.time()), body=body, attempt=1, user_agent="t"
    )
    other = {**good, "cobalt-verification": signing.cobalt_signature(signing.new_secret(), body)}
    missing = {k: v for k, v in good.items() if k != "cobalt-verification"}
    with httpx.Client(timeout=10) as http:
        answers = [
            http.post(node_receiver.url, content=body, headers=good).status_code,
            http.post(node_receiver.url, content=body, headers=other).status_code,
            http.post(
                node_receiver.url, content=body.replace(b"task_1", b"task_2"), headers=good
            ).status_code,
            http.post(node_receiver.url, content=body, headers=missing).status_code,
        ]
    assert answers == [200, 401, 401, 500]


def test_every_character_an_event_can_hold_survives_json_stringify_so_the_node_check_passes(node_receiver):
    secret = signing.new_secret()
    node_receiver.key = secret
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    body = events.serialize(
        {"id": "evt_1", "data": {"description": text, "notify_list": ["a", "b"]}}
    ).encode()
    sent = signing.headers(
        secrets=[secret], msg_id="evt_1", timestamp=int(time.time()), body=body, attempt=1, user_agent="t"
    )
    with httpx.Client(timeout=30) as http:
        assert http.post(node_receiver.url, content=body, headers=sent).status_code == 200
