"""The built-in sandbox EMR: seeded patients, users and phone call types, tasks kept in its own store.

Every connection sees the same seed (22 patients, one MRN shared by two of them, 6 users, 5 call
types). Knobs in the connection's settings inject faults: `latency_ms`, `transient_failure_rate`
(refused before writing) and `unknown_rate` (written, but the reply is lost). The sandbox does not
refuse a second task with the same marker, as a real EMR would not: duplicates stay visible.
"""

import asyncio
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from emrtasks.domain import directory, ids, outcomes, rules, tasks
from emrtasks.emr import base

NAME = "sandbox"

SUBJECT_ASSIGNEE = rules.Rules(
    name="subject_assignee",
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=4000, target="task.body"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="task.patient (by MRN)"),
        rules.FieldRule("subject", True, max_length=255, target="task.title"),
        rules.FieldRule("assignee_user_id", True, max_length=64, target="task.assignee"),
        rules.FieldRule("notify_list", False, max_length=64, max_items=10, target="task.watchers"),
    ),
    notes=("A task with a title and an assignee, like Cobalt's Example A.",),
)
PHONE_CALL = rules.Rules(
    name="phone_call",
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=4000, target="phone_call.note"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="phone_call.patient (by MRN)"),
        rules.FieldRule("subject", False, max_length=255, target="phone_call.summary"),
        rules.FieldRule("assignee_user_id", False, max_length=64, target="phone_call.assigned_to"),
        rules.FieldRule("phone_call_type_id", True, max_length=64, target="phone_call.type"),
        rules.FieldRule("notify_list", False, max_length=64, max_items=10, target="phone_call.cc"),
    ),
    notes=("A phone-call record with a call type and a notify list, like Cobalt's Example B.",),
)
RULE_SETS: Mapping[str, rules.Rules] = {r.name: r for r in (SUBJECT_ASSIGNEE, PHONE_CALL)}
DEFAULT_RULES = SUBJECT_ASSIGNEE.name
MAX_CONCURRENCY = 8
RATE_LIMIT: base.RateLimit | None = None

_NAMES = (
    ("Ava", "Thompson", "1984-03-12", "F"),
    ("Liam", "Garcia", "1979-07-25", "M"),
    ("Mia", "Patel", "1991-11-02", "F"),
    ("Noah", "Kim", "1965-01-30", "M"),
    ("Emma", "Nguyen", "2001-05-18", "F"),
    ("Lucas", "Brown", "1958-09-09", "M"),
    ("Olivia", "Davis", "1988-12-24", "F"),
    ("Ethan", "Wilson", "1972-04-14", "M"),
    ("Sophia", "Martinez", "1995-08-07", "F"),
    ("Mason", "Anderson", "1969-02-21", "M"),
    ("Isabella", "Lopez", "2010-06-11", "F"),
    ("James", "Clark", "1950-10-03", "M"),
    ("Amelia", "Lewis", "1983-03-29", "F"),
    ("Benjamin", "Walker", "1976-07-16", "M"),
    ("Harper", "Hall", "1999-01-08", "F"),
    ("Elijah", "Young", "1962-11-19", "M"),
    ("Evelyn", "King", "1987-05-27", "F"),
    ("Henry", "Wright", "1955-12-05", "M"),
    ("Abigail", "Scott", "1993-09-23", "F"),
    ("Jack", "Green", "1981-02-14", "M"),
)
# MRN-1001 ... MRN-1020, then two different people who share MRN-2000.
PATIENTS: tuple[directory.Patient, ...] = (
    *(
        directory.Patient(
            emr_patient_id=f"pat_{1001 + i}",
            mrn=f"MRN-{1001 + i}",
            first_name=first,
            last_name=last,
            dob=dob,
            sex=sex,
            phone=f"555-01{i:02d}",
        )
        for i, (first, last, dob, sex) in enumerate(_NAMES)
    ),
    directory.Patient("pat_2000a", "MRN-2000", "Chris", "Morgan", "1990-04-04", "M", "555-0190"),
    directory.Patient("pat_2000b", "MRN-2000", "Chris", "Morgan", "1961-08-30", "F", "555-0191"),
)
USERS: tuple[directory.User, ...] = (
    directory.User("usr_1001", "Dr. Dana Reyes", "provider"),
    directory.User("usr_1002", "Dr. Sam Okafor", "provider"),
    directory.User("usr_1003", "Jordan Lee, RN", "staff"),
    directory.User("usr_1004", "Taylor Brooks (front desk)", "staff"),
    directory.User("usr_1005", "Morgan Diaz (billing)", "staff"),
    directory.User("grp_2001", "Nursing pool", "group"),
)
CALL_TYPES: tuple[directory.CallType, ...] = (
    directory.CallType("pct_01", "Prescription refill"),
    directory.CallType("pct_02", "Lab results"),
    directory.CallType("pct_03", "Appointment request"),
    directory.CallType("pct_04", "Billing question"),
    directory.CallType("pct_05", "Clinical question"),
)
TITLE = "Built-in sandbox EMR"
SETTINGS = (
    base.Setting("latency_ms", "milliseconds added to every call", required=False, kind=float, default=0),
    base.Setting(
        "transient_failure_rate",
        "share of creates refused before writing (0 to 1)",
        False,
        kind=float,
        default=0,
    ),
    base.Setting(
        "unknown_rate", "share of creates written whose reply is lost (0 to 1)", False, kind=float, default=0
    ),
)


class Store(Protocol):
    async def insert_task(
        self,
        connection_id: str,
        emr_task_id: str,
        marker: str,
        record: dict[str, Any],
        now: datetime,
    ) -> None: ...

    async def list_tasks(
        self, connection_id: str, marker: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]: ...


def build(
    connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps
) -> "SandboxAdapter":
    from emrtasks import emr  # the registry imports this module; every EMR's rules are a sandbox mode

    return SandboxAdapter(connection, emr.rules_for(NAME, connection.rules), config, deps.sandbox_store)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    for rate in ("transient_failure_rate", "unknown_rate"):
        value = config.get(rate, 0)
        if isinstance(value, int | float) and not 0 <= value <= 1:
            problems.append(f"{rate} must be between 0 and 1")
    if isinstance(config.get("latency_ms", 0), int | float) and config.get("latency_ms", 0) < 0:
        problems.append("latency_ms must be >= 0")
    return problems


class SandboxAdapter:
    def __init__(
        self,
        connection: tasks.Connection,
        task_rules: rules.Rules,
        config: Mapping[str, Any],
        store: Store,
        rng: random.Random | None = None,
    ) -> None:
        self.rules = task_rules
        self._connection_id = connection.id
        self._store = store
        self._rng = rng or random.Random()
        self._latency = float(config.get("latency_ms", 0)) / 1000
        self._transient_rate = float(config.get("transient_failure_rate", 0))
        self._unknown_rate = float(config.get("unknown_rate", 0))

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        await self._wait()
        return [p for p in PATIENTS if mrn is None or p.mrn == mrn]

    async def list_users(self) -> list[directory.User]:
        return list(USERS)

    async def list_call_types(self) -> list[directory.CallType]:
        return list(CALL_TYPES)

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        await self._wait()
        if self._rng.random() < self._transient_rate:
            return outcomes.RetryLater(
                outcomes.EMR_UNAVAILABLE, "The sandbox EMR is unavailable (simulated)."
            )
        emr_task_id = ids.new_id("emrtask")
        record = _record(request, patient)
        await self._store.insert_task(self._connection_id, emr_task_id, marker, record, datetime.now(UTC))
        if self._rng.random() < self._unknown_rate:
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, "The sandbox EMR's reply was lost (simulated).")
        return outcomes.Created(emr_task_id)

    async def find_task(self, marker: str) -> outcomes.Lookup:
        await self._wait()
        found = await self._store.list_tasks(self._connection_id, marker=marker)
        if not found:
            return outcomes.Absent()
        if len(found) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"The EMR holds {len(found)} tasks with this marker."
            )
        return outcomes.Created(str(found[0]["id"]))

    async def _wait(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)


def _record(request: tasks.TaskRequest, patient: directory.Patient) -> dict[str, Any]:
    return {
        "patient_id": patient.emr_patient_id,
        "patient_mrn": patient.mrn,
        "subject": request.subject,
        "description": request.description,
        "assignee_user_id": request.assignee_user_id,
        "phone_call_type_id": request.phone_call_type_id,
        "notify_list": list(request.notify_list),
    }
