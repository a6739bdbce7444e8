"""What protects the console's pages: the session cookie (HttpOnly, SameSite=Strict, Secure over
HTTPS), CSRF tokens bound to the session (or, before sign-in, to a random cookie of the sign-in page),
and the headers every answer carries (a strict CSP, no framing, no referrer, no caching)."""

import hashlib
import hmac
import secrets

from fastapi import Request, Response

SESSION_COOKIE = "emrtasks_console"
SIGN_IN_COOKIE = "emrtasks_console_sign_in"
PATH = "/console"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def csrf_token(key: bytes, bound_to: str) -> str:
    """HMAC of the session's id (or the sign-in page's nonce): a form posted from elsewhere lacks it."""
    return hmac.new(key, b"emrtasks console form\x00" + bound_to.encode(), hashlib.sha256).hexdigest()


def csrf_matches(key: bytes, bound_to: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, bound_to), presented or "")


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=PATH, httponly=True, samesite="strict", secure=secure(request))
