"""One delivery attempt over HTTP: connect only to checked addresses, no redirects, a timeout, and a result.

The request goes to the IP address that passed the SSRF check, with the original Host header and TLS
server name, so the address connected to is the one that was checked. The wire is `http1.Client`.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

from emrtasks.webhooks import http1, ssrf


class Sender(Protocol):
    async def post(self, target: http1.Target, headers: dict[str, str], body: bytes) -> http1.Answer: ...


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
    sender: Sender,
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
            target = await _target(url, resolver, allow_private)
            answer = await sender.post(target, headers, body)
    except ssrf.Refused as exc:
        return Result(None, _ms(started), None, f"refused: {exc}")
    except TimeoutError:
        return Result(None, _ms(started), None, f"timeout after {timeout_seconds:g} s")
    except http1.SendError as exc:
        return Result(None, _ms(started), None, str(exc)[:500])
    except (ValueError, UnicodeError) as exc:  # a URL or header that cannot be sent: a failed attempt
        return Result(None, _ms(started), None, f"the request could not be sent: {type(exc).__name__}")
    status = answer.status
    return Result(
        status,
        _ms(started),
        answer.body.decode(errors="replace"),
        None if 200 <= status < 300 else f"HTTP {status}",
        retry_after_seconds(answer.headers.get("retry-after")),
    )


async def _target(url: str, resolver: ssrf.Resolver, allow_private: bool) -> http1.Target:
    scheme, host, port = ssrf.split_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if allow_private:
        name = host.strip("[]")
        return http1.Target(scheme, name, port, path, parts.netloc, name if scheme == "https" else None)
    [address, *_] = await ssrf.safe_addresses(host, port, resolver)
    return http1.Target(scheme, str(address), port, path, parts.netloc, host if scheme == "https" else None)


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
