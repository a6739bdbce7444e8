"""Driving an EMR's own web screens in headless Chromium (Playwright), for EMRs without a write API.

One browser per worker process, launched on first use; one browser context (cookies, the login) per
EMR login, kept between tasks and logged in again when the EMR has dropped it. One task at a time per
login (`MAX_CONCURRENCY = 1` for every screen-driving EMR): two tabs of one clerk would race each other.
Every step has a timeout. What a step's failure means depends on where it happens: before the record
is submitted nothing was written (try again later); after it, the EMR may have written it (`Unknown`,
so that the lookup by marker runs before anything is written again).

Playwright is optional: it is imported only here and only when a browser is needed. `missing()` names
what is absent (the package, or Chromium at `EMRTASKS_BROWSER_PATH`, by default /usr/bin/chromium).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from emrtasks.domain import outcomes

log = logging.getLogger("emrtasks.emr")
EVIDENCE_SECONDS = 10.0
BROWSER_PATH_VARIABLE = "EMRTASKS_BROWSER_PATH"
DEFAULT_BROWSER_PATH = "/usr/bin/chromium"
STEP_SECONDS = 30.0
"""The longest one step (a page load, a click and what it triggers) may take."""
MAX_CONCURRENCY = 1
RENEW_AFTER_SECONDS = 240.0
"""A kept login idle this long is made again (Tryton ends a session idle 5 minutes by default)."""


_browser = {"path": DEFAULT_BROWSER_PATH}


def use_browser(path: str) -> None:
    """The Chromium binary this process drives (bootstrap passes EMRTASKS_BROWSER_PATH)."""
    _browser["path"] = path


def browser_path() -> str:
    return _browser["path"]


def missing() -> str | None:
    """Why screens cannot be driven on this machine, in words for an operator; None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "driving EMR screens needs Playwright: pip install playwright"
    if not Path(browser_path()).is_file():
        return f"no Chromium at {browser_path()} (set {BROWSER_PATH_VARIABLE} to a Chromium or Chrome binary)"
    return None


class StepFailed(Exception):
    """A step of a screen flow that did not finish as expected (timed out, an element absent, an error
    dialog). `what` names the step only: page text can carry patient data."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class LoginRefused(Exception):
    """The EMR's login screen refused the connection's credentials."""


async def step(what: str, pending: Awaitable[Any], seconds: float = STEP_SECONDS) -> Any:
    """One step, bounded in time; any failure of it is a `StepFailed` naming the step."""
    try:
        return await asyncio.wait_for(pending, seconds)
    except (LoginRefused, StepFailed):
        raise
    except Exception as exc:  # Playwright's errors, timeouts: all mean the step did not happen as planned
        raise StepFailed(f"{what} ({type(exc).__name__})") from exc


KeepEvidence = Callable[[str, bytes, str], Awaitable[str]]
"""Keeps a failed step's name, the page's screenshot and its text (encrypted); the kept file's name."""


async def evidence(page: Any, exc: StepFailed, keep: KeepEvidence | None) -> str:
    """The page as it was when a step failed, kept for the operator: a sentence naming the kept file,
    or "" when nothing could be kept (no keeper, or the browser is gone)."""
    if keep is None:
        return ""
    try:
        shot = await asyncio.wait_for(page.screenshot(full_page=True), EVIDENCE_SECONDS)
        text = await asyncio.wait_for(page.inner_text("body"), EVIDENCE_SECONDS)
        name = await keep(exc.what, shot, str(text))
    except Exception as error:  # evidence is a courtesy: its failure never changes the outcome
        log.warning("screen evidence could not be kept (%s)", type(error).__name__)
        return ""
    return f" The screen was kept as {name}."


def before_submit(exc: StepFailed, kept: str = "") -> outcomes.RetryLater:
    return outcomes.RetryLater(
        outcomes.EMR_UNAVAILABLE, f"The EMR's screens did not answer as expected: {exc.what}.{kept}"
    )


def after_submit(exc: StepFailed, kept: str = "") -> outcomes.Unknown:
    return outcomes.Unknown(
        outcomes.OUTCOME_UNKNOWN,
        f"The EMR's screens did not confirm the saved record ({exc.what}); it is looked up by marker.{kept}",
    )


LogIn = Callable[[Any], Awaitable[None]]
"""Logs a fresh page in; raises `LoginRefused` when the EMR refuses the credentials."""


class _Login:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.context: Any = None
        self.page: Any = None
        self.used_at = 0.0
        self.refused: str | None = None


class BrowserPool:
    """This process's browser and its logins. Chromium starts on the first task that needs it."""

    def __init__(self, renew_after: float = RENEW_AFTER_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._playwright: Any = None
        self._browser: Any = None
        self._logins: dict[str, _Login] = {}
        self._starting = asyncio.Lock()
        self._renew_after = renew_after
        self._clock = clock

    @asynccontextmanager
    async def page(self, key: str, log_in: LogIn) -> AsyncIterator[Any]:
        """The logged-in page of the login `key`, for one task at a time. The login is kept between
        tasks and made again once idle for `renew_after` (before the EMR's own session ends) or after
        a task failed on it (the page may be anywhere)."""
        login = self._logins.setdefault(key, _Login())
        async with login.lock:
            if login.refused is not None:
                raise LoginRefused(login.refused)
            if login.page is None or self._clock() - login.used_at > self._renew_after:
                await self._drop(login)
                await self._log_in(login, log_in)
            try:
                yield login.page
            except BaseException:
                await self._drop(login)
                raise
            login.used_at = self._clock()

    async def _log_in(self, login: _Login, log_in: LogIn) -> None:
        login.context = await self._new_context()
        try:
            login.page = await step("opening a tab", login.context.new_page())
            await log_in(login.page)
        except LoginRefused as exc:
            login.refused = str(exc)  # never tried again: EMRs lock or slow a name after failed logins
            await self._drop(login)
            raise
        except BaseException:
            await self._drop(login)
            raise

    async def _new_context(self) -> Any:
        async with self._starting:
            if self._browser is None or not self._browser.is_connected():
                await self._start()
        return await step("opening a browser context", self._browser.new_context())

    async def _start(self) -> None:
        problem = missing()
        if problem is not None:
            raise outcomes.AdapterError(outcomes.Rejected(outcomes.EMR_REJECTED, problem))
        from playwright.async_api import async_playwright

        if self._playwright is None:
            self._playwright = await async_playwright().start()
        self._browser = await step(
            "starting Chromium",
            self._playwright.chromium.launch(executable_path=browser_path(), args=["--no-sandbox"]),
        )

    async def _drop(self, login: _Login) -> None:
        context, login.context, login.page = login.context, None, None
        if context is not None:
            await _close_quietly(context)

    async def close(self) -> None:
        for login in self._logins.values():
            await self._drop(login)
        if self._browser is not None:
            await _close_quietly(self._browser)
        if self._playwright is not None:
            await self._playwright.stop()
        self._browser = self._playwright = None


async def _close_quietly(closable: Any) -> None:
    try:
        await asyncio.wait_for(closable.close(), 10)
    except Exception:  # already gone (the browser died): nothing left to close
        return


_POOL: BrowserPool | None = None


def pool() -> BrowserPool:
    """This process's pool (each worker process has its own browser)."""
    global _POOL
    if _POOL is None:
        _POOL = BrowserPool()
    return _POOL
