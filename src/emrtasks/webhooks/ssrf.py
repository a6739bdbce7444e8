"""Which addresses a webhook may reach: none that is loopback, private, link-local, CGNAT, multicast,
unspecified or reserved, in IPv4, IPv6 or IPv4-mapped IPv6 form. Checked at registration and again on
the address each attempt actually connects to, so DNS rebinding does not get through.
"""

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
# RFC 8215: a network's own NAT64 prefix; where it maps to varies, so none of it is reachable.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class Refused(Exception):
    """A URL or address a webhook may not be sent to; the message says why."""


def blocked_reason(address: Address) -> str | None:
    """Why a webhook may not connect to this address, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return blocked_reason(embedded)
        if address in _SITE_LOCAL:
            return f"{address} is a site-local address"
        if address in _LOCAL_NAT64:
            return f"{address} is a local-use NAT64 address"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address in _CGNAT, "carrier-grade NAT"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    return next((f"{address} is {_article(name)} {name} address" for hit, name in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 address, which is where it really goes."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def literal_address(host: str) -> Address | None:
    """An IP written in the host, including odd IPv4 forms (`2130706433`, `0x7f.1`, `127.1`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    import asyncio

    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def safe_addresses(host: str, port: int, resolver: Resolver) -> list[Address]:
    """Every address the host resolves to, or `Refused` if any of them is off limits."""
    literal = literal_address(host)
    if literal is not None:
        found: list[Address] = [literal]
    else:
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in await resolver(host, port)]
        except OSError as exc:
            raise Refused(f"the host {host} could not be resolved") from exc
        if not found:
            raise Refused(f"the host {host} could not be resolved")
    for address in found:
        reason = blocked_reason(address)
        if reason:
            raise Refused(f"{host} resolves to a blocked address: {reason}")
    return found


def split_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a webhook URL; `Refused` for anything but plain http(s) URLs."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("the URL is not valid") from exc
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must start with https:// (or http:// where allowed)")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("the URL must not carry credentials")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise Refused("the URL must not contain spaces or control characters")
    try:
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise Refused("the URL's host is not a valid name") from exc
    if port == 0:
        raise Refused("the URL's port must be between 1 and 65535")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def ascii_url(url: str) -> str:
    """The URL with its host in IDNA form, so every later request can send it as a header."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    encoded = host.encode("idna").decode("ascii")
    if encoded == host:
        return url
    netloc = encoded + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
