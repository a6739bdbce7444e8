"""The console's sign-in, sessions, roles and CSRF, in process over HTTP: the cookie's attributes, the
headers of every page, throttling per email and per address, idle and absolute expiry, disabled
operators, and the audit rows of sign-ins and refusals."""

import pytest

from emrtasks.service import operators
from emrtasks.web.console import guard
from tests.api.console_helpers import (
    PASSWORD,
    audit_rows,
    browser,
    console_app,
    csrf_of,
    make_operator,
    sign_in,
)

ADMIN = "admin@example.com"


@pytest.fixture
async def app(runtime):
    async with console_app(runtime) as found:
        yield found


async def test_a_page_without_a_session_sends_the_browser_to_sign_in(app):
    async with browser(app) as client:
        answer = await client.get("/console/tasks")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"


async def test_signing_in_sets_a_strict_httponly_cookie_and_opens_the_overview(app, runtime):
    operator_id = await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        answer = await sign_in(client, "Admin@Example.com ")
        assert answer.status_code == 303 and answer.headers["location"] == "/console"
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith(guard.SESSION_COOKIE + "=")
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure
        overview = await client.get("/console")
    assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
    assert overview.headers["cache-control"] == "no-store"
    csp = overview.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "<script" not in overview.text
    [row] = await audit_rows(runtime, "console.sign_in")
    assert (row["actor_type"], row["actor_id"], row["outcome"]) == (
        "operator",
        f"operator:{operator_id}",
        "success",
    )


async def test_the_session_cookie_is_secure_over_https(runtime):
    await make_operator(runtime, ADMIN)
    async with console_app(runtime) as app, browser(app) as client:
        client.base_url = "https://test"
        answer = await sign_in(client, ADMIN)
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(guard.SESSION_COOKIE + "=")
    )
    assert "Secure" in cookie


async def test_a_wrong_password_is_refused_with_the_same_words_as_an_unknown_email(app, runtime):
    await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        wrong = await sign_in(client, ADMIN, "not the password")
        unknown = await sign_in(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert operators.REFUSED in wrong.text and operators.REFUSED in unknown.text
    assert guard.SESSION_COOKIE + "=" not in str(wrong.headers.get_list("set-cookie"))
    rows = await audit_rows(runtime, "console.sign_in")
    assert [r["outcome"] for r in rows] == ["denied", "denied"]


async def test_a_sign_in_without_the_pages_token_is_refused(app, runtime):
    await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        await client.get("/console/login")
        answer = await client.post(
            "/console/login", data={"email": ADMIN, "password": PASSWORD, "csrf": "0" * 64}
        )
    assert answer.status_code == 403
    assert guard.SESSION_COOKIE + "=" not in str(answer.headers.get_list("set-cookie"))


async def test_sign_ins_are_throttled_per_email_even_with_the_right_password(runtime):
    await make_operator(runtime, ADMIN)
    policy = operators.SessionPolicy(attempts_per_email=3, attempts_per_address=100)
    async with console_app(runtime, policy) as app, browser(app) as client:
        for _ in range(3):
            assert (await sign_in(client, ADMIN, "wrong password")).status_code == 401
        throttled = await sign_in(client, ADMIN)
        async with browser(app, "127.0.0.9") as elsewhere:
            also = await sign_in(elsewhere, ADMIN)
    assert throttled.status_code == also.status_code == 429
    assert operators.TOO_MANY in throttled.text and int(throttled.headers["retry-after"]) > 0


async def test_sign_ins_are_throttled_per_address_across_emails(runtime):
    await make_operator(runtime, ADMIN)
    policy = operators.SessionPolicy(attempts_per_email=100, attempts_per_address=3)
    async with console_app(runtime, policy) as app:
        async with browser(app, "127.0.0.7") as client:
            for n in range(3):
                assert (await sign_in(client, f"guess{n}@example.com")).status_code == 401
            assert (await sign_in(client, ADMIN)).status_code == 429
        async with browser(app, "127.0.0.8") as other:
            assert (await sign_in(other, ADMIN)).status_code == 303


async def test_the_window_passing_lets_sign_ins_through_again(runtime, clock):
    await make_operator(runtime, ADMIN)
    policy = operators.SessionPolicy(attempts_per_email=1, window_seconds=60)
    async with console_app(runtime, policy) as app, browser(app) as client:
        assert (await sign_in(client, ADMIN, "wrong password")).status_code == 401
        assert (await sign_in(client, ADMIN)).status_code == 429
        clock.advance(61)
        assert (await sign_in(client, ADMIN)).status_code == 303


async def test_an_idle_session_ends(runtime, clock):
    await make_operator(runtime, ADMIN)
    policy = operators.SessionPolicy(idle_seconds=600, max_seconds=3600)
    async with console_app(runtime, policy) as app, browser(app) as client:
        await sign_in(client, ADMIN)
        clock.advance(599)
        assert (await client.get("/console")).status_code == 200  # used: idle time starts again
        clock.advance(599)
        assert (await client.get("/console")).status_code == 200
        clock.advance(601)
        assert (await client.get("/console")).headers["location"] == "/console/login"


async def test_a_busy_session_ends_at_its_absolute_expiry(runtime, clock):
    await make_operator(runtime, ADMIN)
    policy = operators.SessionPolicy(idle_seconds=600, max_seconds=1500)
    async with console_app(runtime, policy) as app, browser(app) as client:
        await sign_in(client, ADMIN)
        for _ in range(2):
            clock.advance(500)
            assert (await client.get("/console")).status_code == 200
        clock.advance(501)
        assert (await client.get("/console")).status_code == 303


async def test_disabling_an_operator_ends_their_session_and_refuses_their_sign_in(app, runtime):
    await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        await sign_in(client, ADMIN)
        await operators.set_disabled(runtime.ctx, operators_origin(), ADMIN, True)
        assert (await client.get("/console")).status_code == 303
        assert (await sign_in(client, ADMIN)).status_code == 401
    [row] = await audit_rows(runtime, "operator.disable")
    assert row["outcome"] == "success"


def operators_origin():
    from emrtasks.service import audit

    return audit.operator()


async def test_signing_out_ends_the_session_even_for_a_copied_cookie(app, runtime):
    await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        await sign_in(client, ADMIN)
        token = client.cookies[guard.SESSION_COOKIE]
        page = await client.get("/console")
        answer = await client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303
    async with browser(app) as thief:
        thief.cookies.set(guard.SESSION_COOKIE, token, domain="test", path="/console")
        assert (await thief.get("/console")).status_code == 303
    assert len(await audit_rows(runtime, "console.sign_out")) == 1


async def test_a_session_token_is_stored_only_as_its_hash(app, runtime):
    from sqlalchemy import select

    from emrtasks.storage import db, tables

    await make_operator(runtime, ADMIN)
    async with browser(app) as client:
        await sign_in(client, ADMIN)
        token = client.cookies[guard.SESSION_COOKIE]
    async with db.read(runtime.engine) as conn:
        rows = (await conn.execute(select(tables.console_sessions))).mappings().all()
        [operator] = (await conn.execute(select(tables.operators))).mappings().all()
    assert token not in str([dict(r) for r in rows])
    assert operator["password_hash"].startswith("$argon2id$") and PASSWORD not in operator["password_hash"]


@pytest.mark.parametrize(
    ("email", "password", "role", "error"),
    [
        ("not-an-email", PASSWORD, "admin", "invalid_email"),
        (ADMIN, "short", "admin", "weak_password"),
        (ADMIN, PASSWORD, "root", "invalid_role"),
    ],
)
async def test_an_operator_needs_an_email_a_long_password_and_a_known_role(
    runtime, email, password, role, error
):
    from emrtasks.domain import errors

    with pytest.raises(errors.Problem) as raised:
        await operators.create_operator(runtime.ctx, email, password, role)
    assert raised.value.error == error and raised.value.status == 400
