"""OAuth 2.0 authorization code with PKCE (emr/oauth.py) against a fake authorization server that
checks the verifier: the authorization URL, the code exchange, SMART discovery, endpoint templates."""

import httpx
import pytest

from emrtasks.emr import base, drchrono, fhir, oauth
from tests.oauth_fake import FakeAuthorizationServer, consent

REDIRECT = "http://127.0.0.1:8000/link/oauth/callback"


def _server(**kwargs):
    server = FakeAuthorizationServer(client_id="app", client_secret="s3cret", **kwargs)
    return server, httpx.AsyncClient(transport=httpx.MockTransport(server))


def test_the_s256_challenge_is_rfc_7636s_example():
    # RFC 7636 appendix B.
    assert oauth.challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_a_verifier_has_the_length_and_characters_rfc_7636_asks():
    verifier = oauth.new_verifier()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


async def test_the_code_and_the_right_verifier_give_tokens():
    server, http = _server(tokens=lambda: {"access_token": "at-1", "refresh_token": "rt-1"})
    verifier = oauth.new_verifier()
    url = oauth.authorization_url(
        "https://emr.test/o/authorize/",
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=("a:read", "b:write"),
        state="st-1",
        verifier=verifier,
    )
    back = consent(server, url)
    assert back["state"] == "st-1"
    assert server.authorize_queries[0]["scope"] == "a:read b:write"
    answer = await oauth.exchange_code(
        http,
        "https://emr.test/o/token/",
        code=back["code"],
        redirect_uri=REDIRECT,
        client_id="app",
        client_secret="s3cret",
        verifier=verifier,
    )
    assert answer["refresh_token"] == "rt-1"
    assert oauth.credentials_from(drchrono.OAUTH, answer) == {"access_token": "at-1", "refresh_token": "rt-1"}


async def test_a_wrong_verifier_or_a_reused_code_is_refused():
    server, http = _server()
    verifier = oauth.new_verifier()
    url = oauth.authorization_url(
        "https://emr.test/o/authorize/",
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=(),
        state="s",
        verifier=verifier,
    )
    code = consent(server, url)["code"]
    common = {"redirect_uri": REDIRECT, "client_id": "app", "client_secret": "s3cret"}
    with pytest.raises(oauth.OAuthError, match=r"refused the authorization code: HTTP 400 \(invalid_grant\)"):
        await oauth.exchange_code(http, "https://emr.test/o/token/", code=code, verifier="x" * 43, **common)
    code = consent(server, url)["code"]
    await oauth.exchange_code(http, "https://emr.test/o/token/", code=code, verifier=verifier, **common)
    with pytest.raises(oauth.OAuthError):
        await oauth.exchange_code(http, "https://emr.test/o/token/", code=code, verifier=verifier, **common)


async def test_a_token_answer_without_an_access_token_is_an_error():
    server, http = _server(tokens=lambda: {"token_type": "Bearer"})
    verifier = oauth.new_verifier()
    url = oauth.authorization_url(
        "https://emr.test/o/authorize/",
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=(),
        state="s",
        verifier=verifier,
    )
    code = consent(server, url)["code"]
    with pytest.raises(oauth.OAuthError, match="without an access token"):
        await oauth.exchange_code(
            http,
            "https://emr.test/o/token/",
            code=code,
            redirect_uri=REDIRECT,
            client_id="app",
            client_secret="s3cret",
            verifier=verifier,
        )


async def test_smart_discovery_finds_the_endpoints():
    config = {
        "authorization_endpoint": "https://auth.test/authorize",
        "token_endpoint": "https://auth.test/token",
    }
    _, http = _server(smart_configuration=config)
    found = await oauth.endpoints(fhir.OAUTH, {"base_url": "https://fhir.test/r4"}, http)
    assert found == ("https://auth.test/authorize", "https://auth.test/token")


async def test_smart_discovery_without_endpoints_is_an_error():
    _, http = _server(smart_configuration={"capabilities": []})
    with pytest.raises(oauth.OAuthError, match="names no authorization or token endpoint"):
        await oauth.endpoints(fhir.OAUTH, {"base_url": "https://fhir.test/r4"}, http)
    _, http = _server()  # no smart-configuration: 404
    with pytest.raises(oauth.OAuthError, match="HTTP 404"):
        await oauth.endpoints(fhir.OAUTH, {"base_url": "https://fhir.test/r4"}, http)


async def test_declared_endpoints_are_filled_from_the_config():
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    assert await oauth.endpoints(drchrono.OAUTH, {"base_url": "https://app.drchrono.com"}, http) == (
        "https://drchrono.com/o/authorize/",
        "https://app.drchrono.com/o/token/",
    )
    from emrtasks.emr import canvas

    found = await oauth.endpoints(
        canvas.OAUTH, {"token_url": "https://clinic.canvasmedical.com/auth/token/"}, http
    )
    assert found == (
        "https://clinic.canvasmedical.com/auth/authorize/",
        "https://clinic.canvasmedical.com/auth/token/",
    )
    overridden = {
        "base_url": "x",
        "oauth_authorize_url": "http://127.0.0.1:1/a",
        "oauth_token_url": "http://127.0.0.1:1/t",
    }
    assert await oauth.endpoints(drchrono.OAUTH, overridden, http) == (
        "http://127.0.0.1:1/a",
        "http://127.0.0.1:1/t",
    )
    with pytest.raises(oauth.OAuthError, match="token_url is needed"):
        await oauth.endpoints(canvas.OAUTH, {}, http)


def test_a_smart_authorization_url_names_its_audience():
    url = oauth.authorization_url(
        "https://auth.test/authorize",
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=fhir.OAUTH.scopes,
        state="s",
        verifier=oauth.new_verifier(),
        audience="https://fhir.test/r4",
    )
    assert "aud=https%3A%2F%2Ffhir.test%2Fr4" in url and "code_challenge_method=S256" in url


def test_every_oauth_emr_declares_where_its_tokens_go():
    from emrtasks import emr

    for name, module in emr.MODULES.items():
        declared = getattr(module, "OAUTH", None)
        if declared is None:
            continue
        names = {s.name: s for s in module.SETTINGS}
        for setting in declared.token_fields.values():
            assert names[setting].held_by == base.OAUTH, (name, setting)


async def test_a_smart_client_sends_its_secret_in_http_basic():
    server, http = _server(tokens=lambda: {"access_token": "at-1"})
    verifier = oauth.new_verifier()
    url = oauth.authorization_url(
        "https://emr.test/o/authorize/",
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=(),
        state="s",
        verifier=verifier,
    )
    code = consent(server, url)["code"]
    await oauth.exchange_code(
        http,
        "https://emr.test/o/token/",
        code=code,
        redirect_uri=REDIRECT,
        client_id="app",
        client_secret="s3cret",
        verifier=verifier,
        secret_in_body=fhir.OAUTH.secret_in_body,
    )
    assert server.secret_methods == ["basic"]
    assert "client_secret" not in server.token_forms[0]
