"""`X-Request-Id`: the caller's (if it is a sane token) or a new one, echoed on every answer and kept
in the audit trail, so one request can be followed from the client's log to ours. The application's
front (api/front.py) sets it on each request.
"""

from typing import Any

SCOPE_KEY = "emrtasks.request_id"
HEADER = b"x-request-id"
_ALLOWED = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:")


def request_id_of(scope: Any) -> str | None:
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, str) else None


def given(headers: Any) -> str | None:
    """Up to 128 characters of letters, digits and `-_.:`; anything else is replaced by our own."""
    for name, value in headers:
        if name == HEADER:
            if 0 < len(value) <= 128 and all(byte in _ALLOWED for byte in value):
                return str(value.decode())
            return None
    return None
