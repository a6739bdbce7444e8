"""A client app, as small as it can be, that connects a clinic's EMR through Link and creates a task.

    emrtasks clients create --name "Example Scribe"          # prints client_id and client_secret
    emrtasks clients update --client-id ci_... --allowed-origin http://127.0.0.1:5173
    EMRTASKS_URL=http://127.0.0.1:8000 CLIENT_ID=ci_... CLIENT_SECRET=cs_... \\
        python examples/link_app.py 5173                    # then open http://127.0.0.1:5173

The page includes emrtasks' /link.js. "Connect your EMR" asks this server for a link token (made with
the client credentials, which never reach the browser), opens Link in a lightbox, and hands the public
token it gets back to this server, which exchanges it for the clinic's access token, keeps that, and
creates a task. New-window mode works too: a link token made with `callback_url` = /linked comes back
there. A real app would also check its own user's session on these routes.
"""

import asyncio
import json
import os
import sys
import uuid
from html import escape
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Scribe</title>
<script src="{service}/link.js"></script></head>
<body style="font:17px system-ui;max-width:40rem;margin:2rem auto">
<h1>Example Scribe</h1>
<p>Connect your clinic's EMR, and we create a test task in it.</p>
<button id="connect" type="button">Connect your EMR</button>
<p role="status" id="status">{status}</p>
<script>
const status = document.getElementById("status");
async function post(path, body) {{
  const answer = await fetch(path, {{method: "POST", headers: {{"content-type": "application/json"}},
                                      body: JSON.stringify(body || {{}})}});
  if (!answer.ok) throw new Error(await answer.text());
  return answer.json();
}}
document.getElementById("connect").addEventListener("click", async () => {{
  const {{token}} = await post("/api/link-token");
  EmrtasksLink.open({{
    token,
    onSuccess: async (publicToken) => {{
      status.textContent = "Connected; creating a task...";
      const task = await post("/api/exchange", {{public_token: publicToken}});
      status.textContent = `Task ${{task.task_id}}: ${{task.status}}`;
    }},
    onExit: () => {{ status.textContent = "Link closed without connecting."; }},
  }});
}});
</script>
</body></html>
"""


class LinkApp:
    """The client's server side: its credentials, and the access tokens it got."""

    def __init__(self, service_url: str, client_id: str, client_secret: str) -> None:
        self.service_url = service_url.rstrip("/")
        self.credentials = {"client_id": client_id, "client_secret": client_secret}
        self.access_tokens: list[str] = []
        """One per linked clinic; a real app stores them (encrypted) with the clinic's record."""
        self.app = Starlette(
            routes=[
                Route("/", self.page),
                Route("/linked", self.linked),
                Route("/api/link-token", self.link_token, methods=["POST"]),
                Route("/api/exchange", self.exchange, methods=["POST"]),
            ]
        )

    def served_app(self) -> Starlette:
        return self.app

    async def page(self, _request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(service=self.service_url, status=""))

    async def link_token(self, request: Request) -> JSONResponse:
        """A link token for this clinic (here a made-up org id; a real app uses its own ids)."""
        body = {"user_id": "user-1", "org_id": f"clinic-{uuid.uuid4().hex[:8]}"}
        async with self._http() as http:
            answer = await http.post("/v1/link/token/create", json=body, headers=self.credentials)
        answer.raise_for_status()
        return JSONResponse({"token": answer.json()["token"]})

    async def exchange(self, request: Request) -> JSONResponse:
        public_token = (await request.json()).get("public_token", "")
        return JSONResponse(await self._connect_and_create_task(public_token))

    async def linked(self, request: Request) -> HTMLResponse:
        """New-window mode: Link redirects here with ?token=pt_..."""
        task = await self._connect_and_create_task(request.query_params.get("token", ""))
        status = escape(f"Task {task['task_id']}: {task['status']}")
        return HTMLResponse(PAGE.format(service=self.service_url, status=status))

    async def _connect_and_create_task(self, public_token: str) -> dict[str, Any]:
        async with self._http() as http:
            answer = await http.get(
                "/v1/link/token/exchange", params={"public_token": public_token}, headers=self.credentials
            )
            answer.raise_for_status()
            access_token = answer.json()["token"]
            self.access_tokens.append(access_token)  # kept server-side, never sent to a page
            return await _create_task(http, {**self.credentials, "access_token": access_token})

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.service_url, timeout=30)


async def _create_task(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """A task for the clinic's first user, about the sandbox's patient MRN-1001, and its outcome."""
    users = (await http.get("/v1/users", headers=headers)).json()["users"]
    body = {
        "subject": "Welcome task",
        "description": "Created by Example Scribe right after linking the EMR.",
        "patient_mrn": "MRN-1001",
        "assignee_user_id": users[0]["id"],
    }
    answer = await http.post("/v1/tasks", json=body, headers=headers)
    if answer.status_code != 202:
        return {"task_id": None, "status": f"refused: {json.dumps(answer.json())}"}
    task_id = answer.json()["task_id"]
    for _ in range(50):  # the EMR write happens in the background: wait a little for its outcome
        task = (await http.get(f"/v1/tasks/{task_id}", headers=headers)).json()["task"]
        if task["status"] != "processing":
            break
        await asyncio.sleep(0.2)
    return {"task_id": task_id, "status": task["status"]}


def main() -> None:
    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5173
    app = LinkApp(
        os.environ.get("EMRTASKS_URL", "http://127.0.0.1:8000"),
        os.environ["CLIENT_ID"],
        os.environ["CLIENT_SECRET"],
    )
    uvicorn.run(app.app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
