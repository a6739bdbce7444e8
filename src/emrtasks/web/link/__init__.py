"""The Link pages: where a clinic picks its EMR and signs in, so a client app gets an access token.

`install(app, form_key)` adds the routes (`GET /link`, the form posts, `GET /link/oauth/callback`,
`GET /link.js`, our own CSS and script) to an application whose `state.ctx` is the service context.
"""

from fastapi import FastAPI

from emrtasks.web.link import assets, oauth, pages


def install(app: FastAPI, form_key: bytes) -> None:
    """Add the Link pages to `app`; `form_key` signs their CSRF tokens (the same in every process)."""
    app.state.link_form_key = form_key
    for module in (pages, oauth, assets):
        app.include_router(module.router)
