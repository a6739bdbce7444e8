"""SMART Backend Services end to end in one process: our API serves the JWKS on a real loopback port, a
token endpoint verifies the `fhir` adapter's assertions against it with PyJWT, and the adapter reads
patients and writes a Task with the token it was given."""

import asyncio
import dataclasses
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from joserfc import jwt as jose_jwt

from emrtasks import emr
from emrtasks.api.app import create_app
from emrtasks.domain import directory, outcomes
from emrtasks.domain import tasks as domain_tasks
from emrtasks.emr import base, signing
from emrtasks.service import keys
from tests.contract import harness
from tests.contract.cases.fhir import CASE
from tests.contract.fakes import smart


@pytest.fixture
async def jwks_url(runtime):
    """Our API on a real loopback port (the token endpoint fetches the JWKS over HTTP)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(runtime.ctx)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/.well-known/jwks.json"
    server.should_exit = True
    await serving
    sock.close()


@pytest.fixture
def ring(runtime, clock):
    """The signer bootstrap wired into the adapters, on the test's clock."""
    found = runtime.ctx.adapters.deps.signer
    assert isinstance(found, keys.KeyRing)
    found.clock = clock
    return found


async def _adapter(runtime, fake, client_id=smart.CLIENT_ID):
    http = httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL)
    deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    module = emr.module_for("fhir")
    config = base.with_defaults(module.SETTINGS, smart.config(harness.BASE_URL, client_id))
    assert module.check_config(config) == []
    connection = domain_tasks.Connection("conn_smart", "ci_smart", "fhir", "fhir", None, "active", {})
    return module.build(connection, config, deps), http


async def _new_key(runtime, clock, alg="RS384"):
    return (await keys.create_key(runtime.engine, runtime.ctx.cipher, alg, clock()))["kid"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_a_smart_backend_connection_reads_patients_and_creates_a_task(
    runtime, clock, ring, jwks_url, alg
):
    kid = await _new_key(runtime, clock, alg)
    fake = smart.SmartFhir(jwks_url)
    adapter, http = await _adapter(runtime, fake)
    [patient] = await adapter.search_patients("MRN-1001")
    outcome = await adapter.create_task(CASE.request, patient, marker="task_smart_1")
    await http.aclose()
    assert fake.endpoint.refusals == []
    assert isinstance(outcome, outcomes.Created) and len(fake.created) == 1
    assert fake.endpoint.kids == [kid]  # one token, cached for the read and the write
    [token] = fake.token_requests()
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in token.headers


async def test_a_refused_token_is_renewed_once_with_a_new_assertion(runtime, clock, ring, jwks_url):
    await _new_key(runtime, clock)
    fake = smart.SmartFhir(jwks_url)
    adapter, http = await _adapter(runtime, fake)
    await adapter.search_patients("MRN-1001")
    fake.expire_tokens()
    assert len(await adapter.search_patients("MRN-1001")) == 1
    await http.aclose()
    assert len(fake.token_requests()) == 2 and len(fake.endpoint.seen_jtis) == 2


async def test_an_assertion_the_token_endpoint_refuses_is_login_required(runtime, clock, ring, jwks_url):
    await _new_key(runtime, clock)
    fake = smart.SmartFhir(jwks_url, client_id="the-id-the-ehr-gave-us")
    adapter, http = await _adapter(runtime, fake, client_id="a-wrong-client-id")
    patient = directory.Patient("p1", "MRN-1001", "Ava", "Thompson", "", "", "")
    outcome = await adapter.create_task(CASE.request, patient, marker="task_smart_2")
    with pytest.raises(outcomes.AdapterError) as refused:
        await adapter.search_patients("MRN-1001")
    await http.aclose()
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED
    assert refused.value.outcome.code == outcomes.LOGIN_REQUIRED
    assert fake.created == [] and fake.endpoint.refusals


async def test_a_retired_key_leaves_the_jwks_and_what_it_signed_is_refused(runtime, clock, ring, jwks_url):
    old = await _new_key(runtime, clock)
    signed_by_old = await ring.current()
    endpoint = smart.SmartTokenEndpoint(jwks_url)
    token_url = f"{harness.BASE_URL}{smart.TOKEN_PATH}"

    def assertion(key):  # the token endpoint checks times against the real clock
        return signing.client_assertion(key, smart.CLIENT_ID, token_url, datetime.now(UTC))

    assert await _check(endpoint, assertion(signed_by_old), token_url) is None
    new = await _new_key(runtime, clock)
    await keys.retire_key(runtime.engine, old, clock())
    async with httpx.AsyncClient() as http:
        published = (await http.get(jwks_url)).json()
    assert [k["kid"] for k in published["keys"]] == [new]
    refused = await _check(endpoint, assertion(signed_by_old), token_url)
    assert refused is not None and old in refused
    clock.advance(60)  # the ring reads the keys again: the new key signs, and is accepted
    assert (await ring.current()).kid == new
    assert await _check(endpoint, assertion(await ring.current()), token_url) is None


async def _check(endpoint, assertion, token_url):
    return await asyncio.to_thread(endpoint.check, assertion, token_url)


async def test_the_token_endpoint_refuses_replays_long_lives_and_other_algorithms(
    runtime, clock, ring, jwks_url
):
    await _new_key(runtime, clock)
    endpoint = smart.SmartTokenEndpoint(jwks_url)
    token_url = f"{harness.BASE_URL}{smart.TOKEN_PATH}"
    key = await ring.current()
    fresh = signing.client_assertion(key, smart.CLIENT_ID, token_url, datetime.now(UTC))
    assert await _check(endpoint, fresh, token_url) is None
    assert "replay" in await _check(endpoint, fresh, token_url)
    private = signing.load_private_key(key.private_pem, key.alg)
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": smart.CLIENT_ID, "sub": smart.CLIENT_ID, "aud": token_url, "jti": "j1", "exp": now + 600}
    long_lived = jose_jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"}, claims, private, ["RS384"])
    assert "five minutes" in await _check(endpoint, long_lived, token_url)
    rs256 = jose_jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {**claims, "jti": "j2"}, private)
    assert "RS384 or ES384" in await _check(endpoint, rs256, token_url)
    elsewhere = signing.client_assertion(key, smart.CLIENT_ID, "http://elsewhere/token", datetime.now(UTC))
    assert "InvalidAudienceError" in await _check(endpoint, elsewhere, token_url)


async def test_a_new_key_signs_only_once_it_has_been_published_long_enough(runtime, clock, ring):
    first = await _new_key(runtime, clock)
    assert (await ring.current()).kid == first  # the only key signs at once
    clock.advance(ring.publish_seconds + 1)
    second = await _new_key(runtime, clock)
    clock.advance(60)
    assert (await ring.current()).kid == first  # published, not yet long enough
    clock.advance(ring.publish_seconds)
    assert (await ring.current()).kid == second
    listed = await keys.list_keys(runtime.engine, clock(), ring.publish_seconds)
    assert [(k["kid"], k["signing"]) for k in listed] == [(first, False), (second, True)]


async def test_a_second_key_made_before_the_first_was_published_long_enough_waits_too(runtime, clock, ring):
    first = await _new_key(runtime, clock)
    clock.advance(60)
    second = await _new_key(runtime, clock)
    assert (await ring.current()).kid == first  # no key is published long enough: the oldest signs
    clock.advance(ring.publish_seconds)
    assert (await ring.current()).kid == second


async def test_keys_made_or_retired_elsewhere_reach_the_ring_within_its_refresh(runtime, clock, ring):
    first = await _new_key(runtime, clock)
    assert (await ring.current()).kid == first
    await keys.retire_key(runtime.engine, first, clock())  # as `keys retire` in another process would
    assert (await ring.current()).kid == first  # still in memory
    clock.advance(timedelta(seconds=10).total_seconds())
    with pytest.raises(outcomes.AdapterError) as none_left:
        await ring.current()
    assert none_left.value.outcome.code == outcomes.LOGIN_REQUIRED
    assert "keys create" in none_left.value.outcome.description


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"grant_type": "password"}, "grant_type"),
        ({"client_assertion_type": "urn:other"}, "client_assertion_type"),
        ({"scope": ""}, "scope"),
        ({"client_assertion": ""}, "client_assertion"),
        ({"client_secret": "s3cret"}, "client_secret"),
    ],
)
async def test_the_token_endpoint_refuses_a_request_the_spec_refuses_naming_the_field(change, field):
    fake = smart.SmartFhir("http://127.0.0.1:9/.well-known/jwks.json")
    form = {
        "grant_type": "client_credentials",
        "scope": smart.SCOPE,
        "client_assertion_type": smart.ASSERTION_TYPE,
        "client_assertion": "x.y.z",
        **change,
    }
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL) as http:
        answer = await http.post(smart.TOKEN_PATH, data=form)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert answer.json()["error_description"].startswith(field)
