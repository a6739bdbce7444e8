"""The deployment's signing keys: made, listed and retired from the CLI, published as a JWKS, and the
`KeyRing` adapters sign with (read from the database, kept in memory for a few seconds).

Rotation is safe because a key is published (in `/.well-known/jwks.json`) from the moment it is made
but signs only once it has been published for `publish_seconds`, long enough for every token endpoint
to have fetched the JWKS again; until then the older key goes on signing. When no key has been
published that long (a new deployment), the oldest active key signs: a deployment's only key signs at
once, and a second key made soon after the first still waits its turn.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.domain import errors, outcomes
from emrtasks.emr import signing
from emrtasks.storage import crypto, db, signing_keys

log = logging.getLogger("emrtasks.keys")

NO_KEY = (
    "This deployment has no active signing key for SMART Backend Services: "
    "run `emrtasks keys create`, register the JWKS URL with the EMR, then update the connection."
)


class CreatedKey(TypedDict):
    kid: str
    alg: str
    status: str
    created_at: str


class ListedKey(TypedDict):
    kid: str
    alg: str
    status: str
    signing: bool
    created_at: str
    retired_at: str | None


class RetiredKey(TypedDict):
    kid: str
    status: str
    active_keys_left: int


class Jwks(TypedDict):
    """The JWK Set document (RFC 7517 §5): each key a JSON object as published."""

    keys: list[dict[str, Any]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Loaded:
    key: signing.SigningKey
    created_at: datetime


def choose(keys: Sequence[Any], now: datetime, publish_seconds: float) -> Any | None:
    """The key that signs now, of the active keys (oldest first, each with `created_at`): the newest
    one published for at least `publish_seconds`, else the oldest (the likeliest to be known)."""
    published = [k for k in keys if k.created_at + timedelta(seconds=publish_seconds) <= now]
    if published:
        return published[-1]
    return keys[0] if keys else None


class KeyRing:
    """The signer adapters borrow (`emr.signing.Signer`): the active keys, decrypted, reloaded from the
    database every `refresh_seconds`, so `keys create` and `keys retire` in another process reach
    this one within that time."""

    def __init__(
        self,
        engine: AsyncEngine,
        cipher: crypto.Cipher,
        *,
        publish_seconds: float,
        refresh_seconds: float,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self.publish_seconds = publish_seconds
        self._refresh = timedelta(seconds=refresh_seconds)
        self.clock = clock
        self._keys: list[_Loaded] = []
        self._fresh_until: datetime | None = None
        self._loading = asyncio.Lock()

    async def current(self) -> signing.SigningKey:
        chosen = choose(await self._active(), self.clock(), self.publish_seconds)
        if chosen is None:
            raise outcomes.AdapterError(outcomes.Rejected(outcomes.LOGIN_REQUIRED, NO_KEY))
        key: signing.SigningKey = chosen.key
        return key

    def forget(self) -> None:
        """Read the keys again at the next use (after this process changed them)."""
        self._fresh_until = None

    async def _active(self) -> list[_Loaded]:
        if self._fresh_until is not None and self.clock() < self._fresh_until:
            return self._keys
        async with self._loading:  # one reload at a time; the others use its result
            if self._fresh_until is None or self.clock() >= self._fresh_until:
                self._keys = await self._load()
                self._fresh_until = self.clock() + self._refresh
        return self._keys

    async def _load(self) -> list[_Loaded]:
        async with db.read(self._engine) as conn:
            rows = await signing_keys.active_private_keys(conn)
        return [
            _Loaded(
                signing.SigningKey(
                    row.kid, row.alg, self._cipher.decrypt(row.private_key, private_key_at(row.kid))
                ),
                row.created_at,
            )
            for row in rows
        ]


async def create_key(engine: AsyncEngine, cipher: crypto.Cipher, alg: str, now: datetime) -> CreatedKey:
    """A new key pair; its kid is the RFC 7638 thumbprint of its public key. Published at once."""
    if alg not in signing.ALGORITHMS:
        raise errors.Problem(
            400, "invalid_alg", f"Unsupported algorithm {alg}: use {' or '.join(signing.ALGORITHMS)}."
        )
    private = signing.new_private_key(alg)
    kid = signing.thumbprint(private)
    async with db.write(engine) as conn:
        await signing_keys.insert_key(
            conn,
            kid=kid,
            alg=alg,
            public_jwk=signing.public_jwk(private, kid, alg),
            encrypted_private_key=cipher.encrypt(signing.private_pem(private), private_key_at(kid)),
            now=now,
        )
    log.info("signing key %s (%s) created", kid, alg)
    return {"kid": kid, "alg": alg, "status": signing_keys.ACTIVE, "created_at": now.isoformat()}


async def list_keys(engine: AsyncEngine, now: datetime, publish_seconds: float) -> list[ListedKey]:
    """Every key with its status and whether it signs now; never private material."""
    async with db.read(engine) as conn:
        rows = await signing_keys.list_keys(conn)
    signer = choose([r for r in rows if r.status == signing_keys.ACTIVE], now, publish_seconds)
    return [
        {
            "kid": r.kid,
            "alg": r.alg,
            "status": r.status,
            "signing": signer is not None and r.kid == signer.kid,
            "created_at": r.created_at.isoformat(),
            "retired_at": r.retired_at.isoformat() if r.retired_at else None,
        }
        for r in rows
    ]


async def retire_key(engine: AsyncEngine, kid: str, now: datetime) -> RetiredKey:
    """The key leaves the JWKS and signs no more; a token endpoint then refuses what it signed."""
    async with db.write(engine) as conn:
        if not await signing_keys.retire_key(conn, kid, now):
            found = await signing_keys.get_key(conn, kid)
            if found is None:
                raise errors.not_found("Signing key")
            raise errors.Problem(409, "already_retired", f"Signing key {kid} is already retired.")
        left = len(await signing_keys.list_keys(conn, active_only=True))
    log.info("signing key %s retired", kid)
    return {"kid": kid, "status": signing_keys.RETIRED, "active_keys_left": left}


async def jwks(engine: AsyncEngine) -> Jwks:
    """The JWK Set (RFC 7517 §5) of every key not retired."""
    async with db.read(engine) as conn:
        rows = await signing_keys.list_keys(conn, active_only=True)
    return {"keys": [dict(r.public_jwk) for r in rows]}


def private_key_at(kid: str) -> crypto.Where:
    """Where a signing key's encrypted private half lives."""
    return crypto.Where("signing_keys", kid, "private_key")
