"""A small blocking Tryton JSON-RPC client for the tests: seeding the template and reading records back
as a given user (never the adapter's own code, so a read-back does not share its mistakes)."""

import base64
from dataclasses import dataclass
from typing import Any

import httpx


class Refused(Exception):
    """A call GNU Health answered with an `error` member (HTTP 200) or an error status."""


@dataclass
class Session:
    url: str
    database: str
    header: str

    @classmethod
    def login(cls, url: str, database: str, login: str, password: str) -> "Session":
        answer = httpx.post(
            f"{url}/{database}/",
            json={"id": 0, "method": "common.db.login", "params": [login, {"password": password}, "en"]},
            timeout=30,
        )
        if answer.status_code != 200:
            raise Refused(f"login as {login}: HTTP {answer.status_code}")
        uid, key = answer.json()["result"][:2]
        token = base64.b64encode(f"{login}:{uid}:{key}".encode()).decode()
        return cls(url, database, f"Session {token}")

    def call(self, method: str, *params: Any) -> Any:
        answer = httpx.post(
            f"{self.url}/{self.database}/",
            json={"id": 0, "method": method, "params": list(params)},
            headers={"authorization": self.header},
            timeout=30,
        )
        if answer.status_code != 200:
            raise Refused(f"{method}: HTTP {answer.status_code}")
        body = answer.json()
        if body.get("error"):
            raise Refused(f"{method}: {body['error']}")
        return body["result"]
