"""The deployment's signing keys: made, listed and retired (service and CLI), kept encrypted, and
published without private material at GET /.well-known/jwks.json."""

import base64
import hashlib
import json

import jwt
import pytest
from sqlalchemy import select

from emrtasks import cli
from emrtasks.domain import errors
from emrtasks.service import keys
from emrtasks.storage import db, tables

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _thumbprint(jwk: dict) -> str:
    """RFC 7638 §3, written out here rather than borrowed from the library that made the key."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize(("alg", "kty", "shape"), [("RS384", "RSA", {"n", "e"}), ("ES384", "EC", {"x", "y"})])
async def test_a_new_key_is_published_in_the_jwks_without_private_material(
    runtime, clock, api, alg, kty, shape
):
    created = await keys.create_key(runtime.engine, runtime.ctx.cipher, alg, clock())
    answer = await api.get("/.well-known/jwks.json")  # no credentials
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert "max-age=" in answer.headers["cache-control"]
    [jwk] = answer.json()["keys"]
    assert (jwk["kty"], jwk["kid"], jwk["alg"], jwk["use"]) == (kty, created["kid"], alg, "sig")
    assert shape <= set(jwk) and not PRIVATE_MEMBERS & set(jwk)
    assert jwk["kid"] == _thumbprint(jwk)
    if alg == "ES384":
        assert jwk["crv"] == "P-384"
    jwt.PyJWK(jwk)  # another library reads it as a public key


async def test_the_private_key_is_stored_encrypted_with_the_connection_cipher(runtime, clock):
    created = await keys.create_key(runtime.engine, runtime.ctx.cipher, "RS384", clock())
    async with db.read(runtime.engine) as conn:
        row = (await conn.execute(select(tables.signing_keys))).mappings().one()
    assert row["kid"] == created["kid"]
    assert row["private_key"].startswith("v2:") and "PRIVATE KEY" not in row["private_key"]
    assert not PRIVATE_MEMBERS & set(row["public_jwk"])
    assert runtime.ctx.cipher.decrypt(row["private_key"], keys.private_key_at(row["kid"])).startswith(
        "-----BEGIN PRIVATE KEY-----"
    )


async def test_a_retired_key_leaves_the_jwks_and_is_listed_as_retired(runtime, clock, api):
    old = (await keys.create_key(runtime.engine, runtime.ctx.cipher, "RS384", clock()))["kid"]
    new = (await keys.create_key(runtime.engine, runtime.ctx.cipher, "ES384", clock()))["kid"]
    retired = await keys.retire_key(runtime.engine, old, clock())
    assert retired == {"kid": old, "status": "retired", "active_keys_left": 1}
    assert [k["kid"] for k in (await api.get("/.well-known/jwks.json")).json()["keys"]] == [new]
    listed = {k["kid"]: k for k in await keys.list_keys(runtime.engine, clock(), 0)}
    assert (listed[old]["status"], listed[old]["signing"]) == ("retired", False)
    assert listed[old]["retired_at"]
    assert (listed[new]["status"], listed[new]["signing"]) == ("active", True)


async def test_retiring_an_unknown_or_retired_key_is_refused(runtime, clock):
    kid = (await keys.create_key(runtime.engine, runtime.ctx.cipher, "RS384", clock()))["kid"]
    await keys.retire_key(runtime.engine, kid, clock())
    with pytest.raises(errors.Problem) as again:
        await keys.retire_key(runtime.engine, kid, clock())
    with pytest.raises(errors.Problem) as unknown:
        await keys.retire_key(runtime.engine, "no-such-kid", clock())
    assert (again.value.status, unknown.value.status) == (409, 404)


async def test_an_unsupported_algorithm_is_refused(runtime, clock):
    with pytest.raises(errors.Problem) as refused:
        await keys.create_key(runtime.engine, runtime.ctx.cipher, "HS256", clock())
    assert refused.value.status == 400


async def test_the_jwks_is_empty_before_any_key_is_made(api):
    answer = await api.get("/.well-known/jwks.json")
    assert (answer.status_code, answer.json()) == (200, {"keys": []})


def test_the_cli_creates_lists_and_retires_keys_and_never_prints_private_material(
    settings, monkeypatch, capsys
):
    monkeypatch.setenv("EMRTASKS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EMRTASKS_KEY_FILE", settings.key_file)
    assert cli.main(["db", "upgrade"]) == 0  # operator commands never create the database
    capsys.readouterr()

    def run(*args: str) -> str:
        assert cli.main(list(args)) == 0
        out = capsys.readouterr().out
        assert "PRIVATE" not in out and '"d"' not in out and "v1:" not in out and "v2:" not in out
        return out

    rsa = json.loads(run("keys", "create"))
    ec = json.loads(run("keys", "create", "--alg", "ES384"))
    assert (rsa["alg"], ec["alg"]) == ("RS384", "ES384")
    listed = json.loads(run("keys", "list"))
    assert {(k["kid"], k["alg"], k["status"]) for k in listed} == {
        (rsa["kid"], "RS384", "active"),
        (ec["kid"], "ES384", "active"),
    }
    assert json.loads(run("keys", "retire", rsa["kid"]))["status"] == "retired"
    assert {k["kid"]: k["status"] for k in json.loads(run("keys", "list"))}[rsa["kid"]] == "retired"
    assert cli.main(["keys", "retire", "no-such-kid"]) == 2
