"""One delivery attempt over HTTP: connect only to checked addresses, no redirects, a timeout, and a result.

The request goes to the IP address that passed the SSRF check, with the original Host header and TLS
server name, so the address connected to is the one that was checked.
"""

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from emrtasks.webhooks import ssrf

_BODY_KEPT = 1024


@dataclass(frozen=True)
class Result:
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float,
    resolver: ssrf.Resolver,
    allow_private: bool,
) -> Result:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_seconds):  # the whole attempt, not each read
            target, extensions, host_header = await _target(url, resolver, allow_private)
            request = http.build_request(
                "POST",
                target,
                content=body,
                headers={**headers, "host": host_header},
                timeout=timeout_seconds,
                extensions=extensions,
            )
            response = await http.send(request, follow_redirects=False, stream=True)
            try:
                kept = await _first_bytes(response)
            finally:
                await response.aclose()
    except ssrf.Refused as exc:
        return Result(None, _ms(started), None, f"refused: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        return Result(None, _ms(started), None, f"timeout after {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return Result(None, _ms(started), None, f"{type(exc).__name__}: {exc}"[:500])
    except (ValueError, UnicodeError) as exc:  # a URL or header httpx cannot send: a failed attempt
        return Result(None, _ms(started), None, f"the request could not be sent: {type(exc).__name__}")
    return Result(
        response.status_code,
        _ms(started),
        kept.decode(errors="replace"),
        None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}",
        retry_after_seconds(response.headers.get("retry-after")),
    )


async def _first_bytes(response: httpx.Response) -> bytes:
    """Up to 1 KB of the answer; the rest is never read into memory."""
    if response.is_stream_consumed:  # a transport that read it already (tests' MockTransport)
        return response.content[:_BODY_KEPT]
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk[: _BODY_KEPT - len(kept)]
        if len(kept) >= _BODY_KEPT:
            break
    return kept


async def _target(url: str, resolver: ssrf.Resolver, allow_private: bool) -> tuple[str, dict[str, str], str]:
    scheme, host, port = ssrf.split_url(url)
    parts = urlsplit(url)
    if allow_private:
        return url, {}, parts.netloc
    [address, *_] = await ssrf.safe_addresses(host, port, resolver)
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return pinned, extensions, parts.netloc


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds, from either of its forms (seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
