"""A client app's page, as small as it can be, on its own loopback origin: `/app?token=lt_...` includes
our `/link.js` and opens Link in its lightbox; `/linked?token=pt_...` is the new-window callback.
The test reads what each received from the page itself."""

from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

APP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Scribe</title>
<script src="{service}/link.js"></script></head>
<body style="font:17px system-ui;margin:2rem">
<h1>Example Scribe</h1>
<p>Connect your clinic's EMR so tasks reach it.</p>
<button id="connect" type="button">Connect your EMR</button>
<p>Public token: <output id="result"></output></p>
<p>Exit: <output id="exit"></output></p>
<script>
document.getElementById("connect").addEventListener("click", function () {{
  EmrtasksLink.open({{
    token: {token!r},
    onSuccess: function (publicToken) {{ document.getElementById("result").textContent = publicToken; }},
    onExit: function () {{ document.getElementById("exit").textContent = "exited"; }}
  }});
}});
</script>
</body></html>
"""


class ClientPage:
    """Served with `harness.serve_fake` (it only needs `served_app`)."""

    def __init__(self, service_url: str) -> None:
        self.service_url = service_url
        self.received: list[str] = []
        self.app = Starlette(routes=[Route("/app", self.page), Route("/linked", self.linked)])

    def served_app(self) -> Starlette:
        return self.app

    async def page(self, request: Request) -> HTMLResponse:
        token = request.query_params.get("token", "")
        return HTMLResponse(APP_PAGE.format(service=self.service_url, token=token))

    async def linked(self, request: Request) -> HTMLResponse:
        token = request.query_params.get("token", "")
        self.received.append(token)
        shown = f'<output id="public-token">{escape(token)}</output>'
        return HTMLResponse(f"<!doctype html><title>Linked</title><h1>Linked</h1>{shown}")
