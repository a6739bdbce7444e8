"""One delivery attempt, against an in-memory sender: pinned to the checked address, no redirects."""

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from emrtasks.webhooks import delivery, http1, ssrf

BODY = b'{"type":"task.created","data":{"id":"tsk_1"}}'
HEADERS = {
    "webhook-id": "evt_01",
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1,c2lnbmF0dXJl",
    "webhook-attempt": "1",
    "content-type": "application/json",
    "user-agent": "emrtasks/test",
}


class StubResolver:
    """Answers each call with the next answer (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.answers[min(len(self.calls), len(self.answers)) - 1])


class Request:
    def __init__(self, target: http1.Target, headers: dict[str, str], body: bytes) -> None:
        self.target = target
        self.headers = headers
        self.body = body


class Recorder:
    """A sender that keeps every request it is given and answers from `respond`; nothing leaves
    the process."""

    def __init__(self, respond: Callable[[Request], http1.Answer]) -> None:
        self.respond = respond
        self.requests: list[Request] = []

    async def post(self, target: http1.Target, headers: dict[str, str], body: bytes) -> http1.Answer:
        request = Request(target, headers, body)
        self.requests.append(request)
        return self.respond(request)


def answer(status: int = 200, *, text: str = "", headers: dict[str, str] | None = None) -> Recorder:
    return Recorder(lambda _request: http1.Answer(status, headers or {}, text.encode()))


def failing(exc: Exception) -> Recorder:
    def respond(_request: Request) -> http1.Answer:
        raise exc

    return Recorder(respond)


async def post(
    sender: Recorder,
    url: str = "https://hooks.example.com/path?q=1",
    *,
    resolver: ssrf.Resolver | None = None,
    allow_private: bool = False,
    timeout_seconds: float = 15,
) -> delivery.Result:
    return await delivery.post(
        sender,
        url,
        BODY,
        dict(HEADERS),
        timeout_seconds=timeout_seconds,
        resolver=resolver or StubResolver(["93.184.216.34"]),
        allow_private=allow_private,
    )


async def test_post_connects_to_the_checked_address_with_the_original_host_and_sni() -> None:
    handler = answer(200, text="ok")
    resolver = StubResolver(["93.184.216.34"])
    result = await post(handler, "https://hooks.example.com/path?q=1", resolver=resolver)

    assert resolver.calls == [("hooks.example.com", 443)]
    [request] = handler.requests
    assert request.target == http1.Target(
        scheme="https",
        host="93.184.216.34",
        port=443,
        path="/path?q=1",
        host_header="hooks.example.com",
        server_name="hooks.example.com",
    )
    assert request.body == BODY
    assert request.headers == HEADERS
    assert result.status_code == 200
    assert result.delivered is True
    assert result.error is None
    assert result.response_body == "ok"


async def test_post_over_http_pins_the_address_keeps_the_port_in_host_and_sets_no_sni() -> None:
    handler = answer(204)
    result = await post(
        handler, "http://hooks.example.com:8080/hook", resolver=StubResolver(["93.184.216.34"])
    )
    [request] = handler.requests
    target = request.target
    assert (target.scheme, target.host, target.port) == ("http", "93.184.216.34", 8080)
    assert request.target.path == "/hook"
    assert request.target.host_header == "hooks.example.com:8080"
    assert request.target.server_name is None
    assert result.delivered is True


async def test_post_pins_an_ipv6_address_in_brackets() -> None:
    handler = answer(200)
    await post(handler, "https://hooks.example.com/", resolver=StubResolver(["2606:4700:4700::1111"]))
    [request] = handler.requests
    assert request.target.host == "2606:4700:4700::1111"  # asyncio connects to the address as is
    assert request.target.path == "/"
    assert request.target.host_header == "hooks.example.com"
    assert request.target.server_name == "hooks.example.com"


async def test_post_with_an_empty_path_sends_to_root() -> None:
    handler = answer(200)
    await post(handler, "https://hooks.example.com", resolver=StubResolver(["93.184.216.34"]))
    [request] = handler.requests
    assert (request.target.host, request.target.port, request.target.path) == ("93.184.216.34", 443, "/")


async def test_post_never_requests_a_host_that_resolves_to_a_private_address() -> None:
    handler = answer(200)
    result = await post(handler, resolver=StubResolver(["10.0.0.7"]))
    assert handler.requests == []
    assert result.status_code is None
    assert result.delivered is False
    assert result.response_body is None
    assert result.error is not None
    assert result.error.startswith("refused")
    assert "10.0.0.7 is a private address" in result.error


async def test_post_never_requests_an_odd_encoded_loopback_literal() -> None:
    handler = answer(200)
    resolver = StubResolver(["93.184.216.34"])
    result = await post(handler, "http://2130706433:8080/admin", resolver=resolver)
    assert handler.requests == []
    assert resolver.calls == []
    assert result.status_code is None
    assert (
        result.error == "refused: 2130706433 resolves to a blocked address: 127.0.0.1 is a loopback address"
    )


async def test_post_refuses_a_non_http_url_without_a_request() -> None:
    handler = answer(200)
    result = await post(handler, "ftp://hooks.example.com/file")
    assert handler.requests == []
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("refused")


async def test_dns_rebinding_between_registration_and_delivery_is_refused() -> None:
    resolver = StubResolver(["93.184.216.34"], ["169.254.169.254"])
    at_registration = await ssrf.safe_addresses("hooks.example.com", 443, resolver)
    assert at_registration == [ipaddress.ip_address("93.184.216.34")]

    handler = answer(200)
    result = await post(handler, "https://hooks.example.com/path?q=1", resolver=resolver)
    assert len(resolver.calls) == 2
    assert handler.requests == []
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("refused")
    assert "169.254.169.254 is a link-local address" in result.error


async def test_allow_private_sends_to_the_url_as_given_without_resolving() -> None:
    handler = answer(200)
    resolver = StubResolver(["93.184.216.34"])
    result = await post(handler, "http://localhost:9000/hook?x=1", resolver=resolver, allow_private=True)
    assert resolver.calls == []
    [request] = handler.requests
    assert (request.target.host, request.target.port, request.target.path) == ("localhost", 9000, "/hook?x=1")
    assert request.target.host_header == "localhost:9000"
    assert request.target.server_name is None
    assert result.delivered is True


async def test_a_redirect_is_not_followed_and_not_delivered() -> None:
    handler = answer(302, headers={"location": "http://169.254.169.254/latest/meta-data"})
    result = await post(handler)
    assert len(handler.requests) == 1
    assert result.status_code == 302
    assert result.delivered is False
    assert result.error == "HTTP 302"


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_a_2xx_answer_is_delivered(status: int) -> None:
    result = await post(answer(status))
    assert result.status_code == status
    assert result.delivered is True
    assert result.error is None


@pytest.mark.parametrize("status", [199, 300, 400, 404, 410, 500, 502])
async def test_a_non_2xx_answer_is_not_delivered(status: int) -> None:
    result = await post(answer(status))
    assert result.status_code == status
    assert result.delivered is False
    assert result.error == f"HTTP {status}"


async def test_a_response_body_that_is_not_utf8_is_kept_with_replacement_characters() -> None:
    sender = Recorder(lambda _request: http1.Answer(500, {}, b"bad \xff byte"))
    result = await post(sender)
    assert result.response_body == "bad \ufffd byte"


async def test_a_short_response_body_is_kept_whole() -> None:
    result = await post(answer(400, text="bad signature"))
    assert result.response_body == "bad signature"


async def test_a_retry_after_header_is_read_into_the_result() -> None:
    result = await post(answer(429, headers={"retry-after": "120"}))
    assert result.status_code == 429
    assert result.retry_after == 120.0


async def test_no_retry_after_header_gives_none() -> None:
    result = await post(answer(503))
    assert result.retry_after is None


async def test_a_timeout_gives_an_error_mentioning_the_timeout() -> None:
    class Silent:
        async def post(self, *_: object) -> http1.Answer:
            await asyncio.sleep(60)
            raise AssertionError("not reached")

    result = await delivery.post(
        Silent(),
        "https://hooks.example.com/",
        BODY,
        dict(HEADERS),
        timeout_seconds=0.05,
        resolver=StubResolver(["93.184.216.34"]),
        allow_private=False,
    )
    assert result.status_code is None
    assert result.delivered is False
    assert result.response_body is None
    assert result.error == "timeout after 0.05 s"


async def test_a_connection_error_gives_an_error_naming_it() -> None:
    result = await post(failing(http1.SendError("ConnectionRefusedError: Connection refused")))
    assert result.status_code is None
    assert result.delivered is False
    assert result.error == "ConnectionRefusedError: Connection refused"


async def test_a_request_that_cannot_be_encoded_is_a_failed_attempt() -> None:
    result = await post(failing(ValueError("a header or the path holds a line break or NUL")))
    assert result.status_code is None
    assert result.error == "the request could not be sent: ValueError"


async def test_the_duration_is_recorded_in_milliseconds() -> None:
    result = await post(answer(200))
    assert isinstance(result.duration_ms, int)
    assert 0 <= result.duration_ms < 5000


def test_retry_after_in_seconds() -> None:
    assert delivery.retry_after_seconds("120") == 120.0
    assert delivery.retry_after_seconds(" 7 ") == 7.0


def test_retry_after_as_an_http_date_in_the_future() -> None:
    moment = datetime.now(UTC) + timedelta(seconds=30)
    seconds = delivery.retry_after_seconds(format_datetime(moment, usegmt=True))
    assert seconds is not None
    assert seconds == pytest.approx(30, abs=1.5)


def test_retry_after_as_an_http_date_in_the_past_is_zero() -> None:
    moment = datetime.now(UTC) - timedelta(minutes=10)
    assert delivery.retry_after_seconds(format_datetime(moment, usegmt=True)) == 0.0


@pytest.mark.parametrize("value", [None, "", "garbage", "soon", "-5", "1.5x"])
def test_retry_after_that_cannot_be_read_is_none(value: str | None) -> None:
    assert delivery.retry_after_seconds(value) is None
