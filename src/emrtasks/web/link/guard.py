"""What protects the Link pages: CSRF tokens bound to the link session, and the headers every Link
answer carries (a strict Content-Security-Policy whose `frame-ancestors` are the client's allowed
origins, no referrer, no caching, no sniffing)."""

import hashlib
import hmac
import re
from collections.abc import Sequence

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def csrf_token(key: bytes, link_id: str) -> str:
    """HMAC of the link session's id with the server's form key: a form posted from elsewhere lacks it."""
    return hmac.new(key, b"emrtasks link form\x00" + link_id.encode(), hashlib.sha256).hexdigest()


def csrf_matches(key: bytes, link_id: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, link_id), presented or "")


def content_security_policy(frame_origins: Sequence[str]) -> str:
    """Only our own scripts, styles and images; no plugins; no <base>. Framing only by the client's
    allowed origins ('none' without any). `form-action` is left open on purpose: the forms' answers
    redirect to the client's callback_url or to the EMR's consent page, origins known only per clinic,
    and Chromium applies form-action to those redirects."""
    ancestors = " ".join(o for o in frame_origins if _ORIGIN.match(o)) or "'none'"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            f"frame-ancestors {ancestors}",
        )
    )


def page_headers(frame_origins: Sequence[str]) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(frame_origins),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
