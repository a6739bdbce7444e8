"""GNU Health (5.0) through its web client: the same follow-up appointment as `gnuhealth`, written by
driving SAO (Tryton's web client, 7.0) in headless Chromium as a front-desk clerk does.

The clerk's path: log in (database and login, then the password in a second dialog), open
`/#<database>/model/gnuhealth.appointment` (an editable list), **New** (a row with the defaults: state
confirmed), type the patient's PUID and the professional's family name (each a many2one: one match is
filled in, several open a search dialog where the exact name is picked), choose the visit type and the
urgency, type the comments, **Save**. The list's Comments is a one-line input, so the subject, the
description and the marker are joined by " | " with line breaks turned into spaces.

Reads go through the JSON-RPC API (`gnuhealth.GnuHealthAdapter`): patients, professionals, call types,
the marker lookup before every write and after a lost outcome, and the saved appointment's id, found by
its marker once SAO has saved it. Settings and rules are `gnuhealth`'s; writes are one at a time per
connection (`screens.MAX_CONCURRENCY`).
"""

import asyncio
from collections.abc import Mapping
from typing import Any

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base, gnuhealth, screens

NAME = "gnuhealth_web"
TITLE = "GNU Health through its web client (follow-up appointment)"
RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=gnuhealth.RULES.fields,
    assignee_identified_by=gnuhealth.RULES.assignee_identified_by,
    patient_identified_by=gnuhealth.RULES.patient_identified_by,
    finds_by_marker=True,
    notes=(
        *gnuhealth.RULES.notes,
        "Written through GNU Health's web client: the comments are one line (line breaks become spaces).",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = screens.MAX_CONCURRENCY
RATE_LIMIT: base.RateLimit | None = None
SETTINGS = gnuhealth.SETTINGS
SAVED_SECONDS = 30.0
"""How long the saved appointment may take to be found by its marker."""


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = gnuhealth.check_config(config)
    missing = screens.missing()
    return [*problems, missing] if missing else problems


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "GnuHealthWebAdapter":
    api = gnuhealth.build(connection, config, deps)
    settings = base.with_defaults(SETTINGS, config)
    return GnuHealthWebAdapter(settings, api, screens.pool(), deps.keep_evidence)


def comments(request: tasks.TaskRequest, marker: str) -> str:
    parts = [request.subject, request.description, gnuhealth.marker_text(marker)]
    return " | ".join(" ".join(p.split()) for p in parts if p)


class GnuHealthWebAdapter:
    def __init__(
        self,
        config: Mapping[str, Any],
        api: gnuhealth.GnuHealthAdapter,
        browsers: screens.BrowserPool,
        keep_evidence: screens.KeepEvidence | None = None,
    ) -> None:
        self._keep_evidence = keep_evidence
        self.rules = RULES
        self._api = api
        self._browsers = browsers
        self._root = str(config["url"]).rstrip("/")
        self._database = str(config["database"])
        self._username = str(config["username"])
        self._password = str(config["password"])
        self._visit_type = str(config["visit_type"])
        self._urgency = str(config["urgency"])

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        return await self._api.search_patients(mrn)

    async def list_users(self) -> list[directory.User]:
        return await self._api.list_users()

    async def list_call_types(self) -> list[directory.CallType]:
        return await self._api.list_call_types()

    async def find_task(self, marker: str) -> outcomes.Lookup:
        return await self._api.find_task(marker)

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        missing = screens.missing()
        if missing is not None:
            return outcomes.Rejected(
                outcomes.EMR_REJECTED, f"This deployment cannot drive screens: {missing}."
            )
        try:
            written = await self._api.find_task(marker)
            if isinstance(written, outcomes.Created | outcomes.Unknown):
                return written  # written by an earlier attempt whose outcome was lost: never twice
            refusal, professionals = await self._api._recipients(request)
            if refusal is not None:
                return refusal
            names = {u.id: u.name for u in await self._api.list_users()}
            created = await self._drive(request, patient, marker, names[request.assignee_user_id or ""])
            if not isinstance(created, outcomes.Created):
                return created
            return await self._api._notify(created, request, professionals)
        except outcomes.AdapterError as exc:
            return exc.outcome

    async def _drive(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str, professional: str
    ) -> outcomes.Outcome:
        try:
            async with self._browsers.page(
                f"{self._root}|{self._database}|{self._username}", self._log_in
            ) as page:
                try:
                    await self._fill(page, request, patient, marker, professional)
                except screens.StepFailed as exc:
                    return screens.before_submit(exc, await screens.evidence(page, exc, self._keep_evidence))
                try:
                    await screens.step("saving the appointment", page.locator("#save:visible").click())
                    return await self._saved(page, marker)
                except screens.StepFailed as exc:
                    return screens.after_submit(exc, await screens.evidence(page, exc, self._keep_evidence))
        except screens.LoginRefused as exc:
            return outcomes.Rejected(outcomes.LOGIN_REQUIRED, str(exc))
        except screens.StepFailed as exc:  # logging in or opening a tab: nothing was submitted
            return screens.before_submit(exc)

    async def _log_in(self, page: Any) -> None:
        await screens.step("opening the login page", page.goto(f"{self._root}/"))
        await screens.step("typing the database", page.locator("input#database").fill(self._database))
        await screens.step("typing the login", page.locator("input#login").fill(self._username))
        await screens.step("submitting the login", page.locator("button[type=submit]").click())
        secret = page.locator("input[type=password]:visible").first  # asked in a second dialog
        await screens.step("typing the password", secret.fill(self._password))
        await screens.step("submitting the password", secret.press("Enter"))
        try:
            await screens.step("waiting for the menu", page.locator("#global-search-entry").wait_for())
        except screens.StepFailed:
            if await page.locator("input[type=password]:visible").count():
                raise screens.LoginRefused(
                    "GNU Health's web client refused the connection's login; it is not tried again."
                ) from None
            raise

    async def _fill(
        self,
        page: Any,
        request: tasks.TaskRequest,
        patient: directory.Patient,
        marker: str,
        professional: str,
    ) -> None:
        url = f"{self._root}/#{self._database}/model/gnuhealth.appointment"
        await screens.step("opening the appointments", page.goto(url))
        await screens.step("reloading the web client", page.reload())  # one tab, whatever came before
        await screens.step("clicking New", page.locator("#new_:visible").click())
        await _pick(page, "patient", patient.mrn, f"{patient.last_name}, {patient.first_name}")
        await _pick(page, "healthprof", professional.split(",")[0], professional)
        visit = request.phone_call_type_id or self._visit_type
        await screens.step(
            "choosing the visit type",
            page.locator("select[name=visit_type]:visible").select_option(value=f'"{visit}"'),
        )
        await screens.step(
            "choosing the urgency",
            page.locator("select[name=urgency]:visible").select_option(value=f'"{self._urgency}"'),
        )
        text = comments(request, marker)
        await screens.step("typing the comments", page.locator("input[name=comments]:visible").fill(text))

    async def _saved(self, page: Any, marker: str) -> outcomes.Outcome:
        """The saved appointment, found by its marker; an error dialog or no record is `Unknown`."""
        for _ in range(int(SAVED_SECONDS / 0.25)):
            found = await self._api.find_task(marker)
            if isinstance(found, outcomes.Created):
                return found
            if await screens.step("looking for a dialog", page.locator(".modal:visible").count()):
                raise screens.StepFailed("a dialog after saving")
            await asyncio.sleep(0.25)  # SAO saves asynchronously after the click
        raise screens.StepFailed("no appointment with the marker after saving")


async def _pick(page: Any, field: str, typed: str, name: str) -> None:
    """A many2one: the typed text and Tab; one match fills it, several open a search dialog where the
    row named exactly `name` is chosen."""
    entry = page.locator(f"input[name={field}]:visible")
    await screens.step(f"typing the {field}", entry.fill(typed))
    await screens.step(f"leaving the {field}", entry.press("Tab"))
    for _ in range(int(screens.STEP_SECONDS / 0.25)):
        if await entry.input_value() == name:
            return
        dialog = page.locator(".modal:visible")
        if await dialog.count():
            await _choose(dialog.last, field, name)
            return
        await asyncio.sleep(0.25)
    raise screens.StepFailed(f"no match for the {field}")


async def _choose(dialog: Any, field: str, name: str) -> None:
    rows = dialog.locator("tbody tr:visible").filter(has_text=name)
    await screens.step(f"waiting for the {field} search", rows.first.wait_for())
    if await rows.count() != 1:
        raise screens.StepFailed(f"the {field} search did not show exactly one {field} of that name")
    await screens.step(f"choosing the {field}", rows.first.dblclick())  # a double click picks and closes
