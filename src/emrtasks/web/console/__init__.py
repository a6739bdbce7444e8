"""The operator console at /console: sign-in, the overview, tasks and their timelines, connections,
clients and webhook endpoints. Server-rendered pages with plain forms; every form carries a CSRF token
bound to the session; viewers read, admins act.

`install(app, form_key, policy)` adds the routes to an application whose `state.ctx` is the service
context.
"""

import hashlib
import hmac

from fastapi import FastAPI

from emrtasks.service import operators
from emrtasks.web.console import actions, assets, overview, sign_in, task_pages


def install(app: FastAPI, form_key: bytes, policy: operators.SessionPolicy) -> None:
    """Add the console; `form_key` (the same in every process) signs its CSRF tokens."""
    app.state.console_key = hmac.new(form_key, b"emrtasks console forms", hashlib.sha256).digest()
    app.state.console_policy = policy
    for module in (sign_in, overview, task_pages, actions, assets):
        app.include_router(module.router)
