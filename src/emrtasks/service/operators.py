"""Console operators (create, list, disable) and their sessions: sign-in with an Argon2id-hashed
password, throttled per email and per address in the database (every process counts together), a
random session token kept only as its hash, ended when idle too long, at its absolute expiry or at
sign-out. Sign-ins, refused ones too, and sign-outs are on the audit trail."""

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

import argon2

from emrtasks.domain import errors, ids
from emrtasks.service import audit
from emrtasks.service.context import Context
from emrtasks.storage import db, rate_limits
from emrtasks.storage import operators as stored_operators

VIEWER = "viewer"
ADMIN = "admin"
ROLES = (VIEWER, ADMIN)
MIN_PASSWORD_LENGTH = 12
_TOUCH_AFTER_SECONDS = 30.0
"""A session's last use is written at most this often: idle expiry needs no write per page."""

_hasher = argon2.PasswordHasher()  # Argon2id with the RFC 9106 "low memory" parameters
# Verified when the email is unknown, so an unknown email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions last and how many sign-in attempts a window allows."""

    idle_seconds: float = 30 * 60
    max_seconds: float = 12 * 3600
    attempts_per_email: int = 10
    attempts_per_address: int = 50
    window_seconds: float = 15 * 60


@dataclass(frozen=True)
class Session:
    """A signed-in operator, as a console page sees them."""

    session_id: str
    operator_id: str
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def origin(self, source_address: str | None = None, request_id: str | None = None) -> audit.Origin:
        return audit.Origin(
            audit.OPERATOR, actor_of(self.operator_id), source_address=source_address, request_id=request_id
        )


class CreatedOperator(TypedDict):
    """What creating an operator answers (the command line prints it as JSON)."""

    operator_id: str
    email: str
    role: str


class ListedOperator(TypedDict):
    """One operator as the command line lists them."""

    operator_id: str
    email: str
    role: str
    state: str
    created_at: datetime
    last_login_at: datetime | None


class ChangedOperator(TypedDict):
    operator_id: str
    email: str
    state: str


def actor_of(operator_id: str) -> str:
    return f"operator:{operator_id}"


def normalized_email(email: str) -> str:
    found = email.strip().lower()
    if not 3 <= len(found) <= 254 or "@" not in found or any(c.isspace() or c == "\x00" for c in found):
        raise errors.Problem(400, "invalid_email", "Invalid email: give an address like ops@example.com.")
    return found


async def create_operator(ctx: Context, email: str, password: str, role: str = VIEWER) -> CreatedOperator:
    email = normalized_email(email)
    if role not in ROLES:
        raise errors.Problem(400, "invalid_role", f"Invalid role: use one of {', '.join(ROLES)}.")
    if len(password) < MIN_PASSWORD_LENGTH:
        message = f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters."
        raise errors.Problem(400, "weak_password", message)
    hashed = await asyncio.to_thread(_hasher.hash, password)
    operator_id, now = ids.new_id("op"), ctx.clock()
    async with db.write(ctx.engine) as conn:
        if await stored_operators.get_by_email(conn, email) is not None:
            raise errors.Problem(409, "already_exists", f"An operator with the email {email} exists.")
        await stored_operators.insert_operator(
            conn, id=operator_id, email=email, password_hash=hashed, role=role, created_at=now, updated_at=now
        )
    return {"operator_id": operator_id, "email": email, "role": role}


async def list_operators(ctx: Context) -> list[ListedOperator]:
    async with db.read(ctx.engine) as conn:
        found = await stored_operators.list_operators(conn)
    return [
        {
            "operator_id": row.id,
            "email": row.email,
            "role": row.role,
            "state": "disabled" if row.disabled_at else "active",
            "created_at": row.created_at,
            "last_login_at": row.last_login_at,
        }
        for row in found
    ]


async def set_disabled(ctx: Context, origin: audit.Origin, email: str, disabled: bool) -> ChangedOperator:
    """A disabled operator cannot sign in, and their open sessions end now."""
    email = normalized_email(email)
    action = "operator.disable" if disabled else "operator.enable"
    async with audit.changing(ctx, origin, action) as change, db.write(ctx.engine) as conn:
        found = await stored_operators.get_by_email(conn, email)
        if found is None:
            raise errors.not_found("Operator")
        change.targets["operator_id"] = found.id
        now = ctx.clock()
        await stored_operators.update_operator(
            conn, found.id, disabled_at=now if disabled else None, updated_at=now
        )
        if disabled:
            await stored_operators.end_sessions_of(conn, found.id, now)
        await change.write(conn, now)
    return {"operator_id": found.id, "email": email, "state": "disabled" if disabled else "active"}


TOO_MANY = "Too many sign-in attempts. Wait a few minutes and try again."
REFUSED = "Wrong email or password."


async def sign_in(
    ctx: Context, policy: SessionPolicy, email: str, password: str, origin: audit.Origin
) -> tuple[str, Session]:
    """A new session's token (for the cookie) and the session; 429 past the throttle, 401 when the
    email and password do not match an active operator (the same answer whichever was wrong)."""
    key = email.strip().lower()
    await _throttle(ctx, policy, key, origin.source_address)
    async with db.read(ctx.engine) as conn:
        found = await stored_operators.get_by_email(conn, key)
    if not await _password_matches(found, password):
        targets = {"operator_id": found.id if found else None}
        await audit.record(ctx, origin, "console.sign_in", targets=targets, outcome=audit.DENIED)
        raise errors.Problem(401, "invalid_login", REFUSED)
    assert found is not None
    return await _open_session(ctx, policy, found, origin)


async def _throttle(ctx: Context, policy: SessionPolicy, email: str, address: str | None) -> None:
    scopes = [(f"console_login:email:{_digest(email)}", policy.attempts_per_email)]
    if address:
        scopes.append((f"console_login:address:{address}", policy.attempts_per_address))
    for scope, calls in scopes:
        wait = await rate_limits.take(
            ctx.engine, scope, calls=calls, per_seconds=policy.window_seconds, now=ctx.clock()
        )
        if wait is not None:
            retry_after = str(max(math.ceil(wait), 1))
            raise errors.Problem(429, "too_many_attempts", TOO_MANY, headers=(("Retry-After", retry_after),))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def _password_matches(found: stored_operators.Operator | None, password: str) -> bool:
    stored_hash = found.password_hash if found and not found.disabled_at else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
    return stored_hash is not _DUMMY_HASH


async def _open_session(
    ctx: Context, policy: SessionPolicy, found: stored_operators.Operator, origin: audit.Origin
) -> tuple[str, Session]:
    token, session_id, now = ids.new_secret("cst"), ids.new_id("csn"), ctx.clock()
    session = Session(session_id, found.id, found.email, found.role)
    origin = session.origin(origin.source_address, origin.request_id)
    async with db.write(ctx.engine) as conn:
        await stored_operators.insert_session(
            conn,
            id=session_id,
            token_hash=ids.hash_secret(token),
            operator_id=found.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=policy.max_seconds),
        )
        await stored_operators.update_operator(conn, found.id, last_login_at=now)
        await audit.record_in(conn, origin, "console.sign_in", now, targets={"operator_id": found.id})
    return token, session


async def session_of(ctx: Context, policy: SessionPolicy, token: str | None) -> Session | None:
    """The live session of a cookie's token, or None (unknown, ended, idle too long, past its end,
    or its operator disabled)."""
    if not token or len(token) > 128:
        return None
    async with db.read(ctx.engine) as conn:
        row = await stored_operators.session_by_token_hash(conn, ids.hash_secret(token))
    now = ctx.clock()
    if row is None or not _live(row, policy, now):
        return None
    if (now - row.last_seen_at).total_seconds() >= _TOUCH_AFTER_SECONDS:
        async with db.write(ctx.engine, durable=False) as conn:  # a lost touch only shortens the session
            await stored_operators.touch_session(conn, row.id, now)
    return Session(row.id, row.operator_id, row.email, row.role)


def _live(row: stored_operators.OperatorSession, policy: SessionPolicy, now: datetime) -> bool:
    idle_until = row.last_seen_at + timedelta(seconds=policy.idle_seconds)
    ended = row.ended_at is not None or row.disabled_at is not None
    return not ended and now < row.expires_at and now < idle_until


async def sign_out(ctx: Context, session: Session, origin: audit.Origin) -> None:
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        await stored_operators.end_session(conn, session.session_id, now)
        await audit.record_in(
            conn, origin, "console.sign_out", now, targets={"operator_id": session.operator_id}
        )
