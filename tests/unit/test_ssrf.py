"""Which addresses a webhook may reach, checked without any network: DNS answers come from a stub."""

import ipaddress
import re
import socket

import pytest

from emrtasks.webhooks import ssrf


class StubResolver:
    """Answers each call with the next answer (the last one repeats); an exception answer is raised."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "private"),  # limited broadcast: Python lists 255.255.255.255/32 as private
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b:1::a00:1", "local-use NAT64"),  # RFC 8215: whatever the network maps it to
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "100.128.0.1",  # just past 100.64.0.0/10
    "172.32.0.1",  # just past 172.16.0.0/12
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize(("address", "kind"), BLOCKED)
def test_blocked_reason_refuses_internal_addresses_and_names_the_class(address: str, kind: str) -> None:
    reason = ssrf.blocked_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert reason.endswith(f" {kind} address")


@pytest.mark.parametrize("address", ALLOWED)
def test_blocked_reason_allows_public_addresses(address: str) -> None:
    assert ssrf.blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
    ],
)
def test_blocked_reason_for_ipv4_in_ipv6_names_the_embedded_ipv4_address(address: str, embedded: str) -> None:
    reason = ssrf.blocked_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert reason.startswith(f"{embedded} is a ")


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "0x7f000001", "127.0.0.1"])
def test_literal_address_normalises_odd_ipv4_forms_to_loopback(host: str) -> None:
    assert ssrf.literal_address(host) == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize("host", ["[::1]", "::1"])
def test_literal_address_reads_ipv6_with_or_without_brackets(host: str) -> None:
    assert ssrf.literal_address(host) == ipaddress.IPv6Address("::1")


@pytest.mark.parametrize("host", ["hooks.example.com", "localhost", "metadata.google.internal", "cafe.be"])
def test_literal_address_is_none_for_a_dns_name(host: str) -> None:
    assert ssrf.literal_address(host) is None


async def test_safe_addresses_refuses_a_name_resolving_to_a_private_address() -> None:
    resolver = StubResolver(["10.1.2.3"])
    with pytest.raises(ssrf.Refused) as caught:
        await ssrf.safe_addresses("hooks.example.com", 443, resolver)
    assert (
        str(caught.value) == "hooks.example.com resolves to a blocked address: 10.1.2.3 is a private address"
    )
    assert resolver.calls == [("hooks.example.com", 443)]


async def test_safe_addresses_refuses_a_name_resolving_to_a_public_and_a_private_address() -> None:
    resolver = StubResolver(["93.184.216.34", "127.0.0.1"])
    with pytest.raises(ssrf.Refused, match=re.escape("127.0.0.1 is a loopback address")):
        await ssrf.safe_addresses("hooks.example.com", 443, resolver)


async def test_safe_addresses_refuses_a_name_resolving_to_an_ipv4_mapped_private_address() -> None:
    resolver = StubResolver(["::ffff:192.168.0.10"])
    with pytest.raises(ssrf.Refused, match=re.escape("192.168.0.10 is a private address")):
        await ssrf.safe_addresses("hooks.example.com", 443, resolver)


async def test_safe_addresses_returns_every_public_address_of_a_name() -> None:
    resolver = StubResolver(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    found = await ssrf.safe_addresses("hooks.example.com", 8443, resolver)
    assert found == [
        ipaddress.IPv4Address("93.184.216.34"),
        ipaddress.IPv6Address("2606:2800:220:1:248:1893:25c8:1946"),
    ]
    assert resolver.calls == [("hooks.example.com", 8443)]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::1]", "169.254.169.254"])
async def test_safe_addresses_refuses_an_internal_literal_without_resolving(host: str) -> None:
    resolver = StubResolver(["93.184.216.34"])
    with pytest.raises(ssrf.Refused, match="blocked address"):
        await ssrf.safe_addresses(host, 443, resolver)
    assert resolver.calls == []


async def test_safe_addresses_accepts_a_public_literal_without_resolving() -> None:
    resolver = StubResolver(["10.0.0.1"])
    assert await ssrf.safe_addresses("93.184.216.34", 443, resolver) == [
        ipaddress.ip_address("93.184.216.34")
    ]
    assert resolver.calls == []


@pytest.mark.parametrize(
    "error", [socket.gaierror(socket.EAI_NONAME, "Name or service not known"), OSError("network down")]
)
async def test_safe_addresses_refuses_a_name_that_cannot_be_resolved(error: OSError) -> None:
    with pytest.raises(ssrf.Refused) as caught:
        await ssrf.safe_addresses("nowhere.example.com", 443, StubResolver(error))
    assert str(caught.value) == "the host nowhere.example.com could not be resolved"


async def test_safe_addresses_refuses_a_name_with_no_addresses() -> None:
    with pytest.raises(ssrf.Refused, match="could not be resolved"):
        await ssrf.safe_addresses("empty.example.com", 443, StubResolver([]))


async def test_safe_addresses_refuses_the_cloud_metadata_name() -> None:
    with pytest.raises(ssrf.Refused) as caught:
        await ssrf.safe_addresses("metadata.google.internal", 80, StubResolver(["169.254.169.254"]))
    assert str(caught.value) == (
        "metadata.google.internal resolves to a blocked address: 169.254.169.254 is a link-local address"
    )


async def test_safe_addresses_strips_an_ipv6_scope_id_before_checking() -> None:
    with pytest.raises(ssrf.Refused, match="fe80::1 is a link-local address"):
        await ssrf.safe_addresses("hooks.example.com", 443, StubResolver(["fe80::1%eth0"]))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("gopher://example.com/", "must start with https://"),
        ("example.com/hook", "must start with https://"),
        ("https:///hook", "has no host"),
        ("https://:443/hook", "has no host"),
        ("https://u:p@example.com/", "must not carry credentials"),
        ("https://u@example.com/", "must not carry credentials"),
        ("https://example.com:99999/", "not valid"),
        ("https://example.com:abc/", "not valid"),
        ("https://example.com:-1/", "not valid"),
        ("https://[::1/", "not valid"),
    ],
)
def test_split_url_refuses_anything_but_plain_http_urls(url: str, message: str) -> None:
    with pytest.raises(ssrf.Refused, match=message):
        ssrf.split_url(url)


def test_split_url_refuses_port_zero() -> None:
    with pytest.raises(ssrf.Refused):
        ssrf.split_url("https://example.com:0/hook")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/path?q=1", ("https", "hooks.example.com", 443)),
        ("http://hooks.example.com/path", ("http", "hooks.example.com", 80)),
        ("https://hooks.example.com:8443/path", ("https", "hooks.example.com", 8443)),
        ("HTTPS://Hooks.Example.COM/", ("https", "hooks.example.com", 443)),
        ("https://[2606:4700:4700::1111]/", ("https", "2606:4700:4700::1111", 443)),
    ],
)
def test_split_url_returns_scheme_host_and_port_with_defaults(
    url: str, expected: tuple[str, str, int]
) -> None:
    assert ssrf.split_url(url) == expected
