"""The Link pages: where a clinic picks its EMR and signs in, so a client app gets an access token.

`install(app, form_key)` adds the routes (`GET /link`, the form posts, `GET /link/oauth/callback`,
`GET /link.js`, our own CSS and script) to an application whose `state.ctx` is the service context.
"""

from emrtasks.web.link.pages import install

__all__ = ["install"]
