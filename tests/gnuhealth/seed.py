"""What the GNU Health template holds besides GNU Health's own data: a front-desk login, two health
professionals with their own logins, and patients, all made as admin through JSON-RPC.

Patients are found by PUID (`party.ref`, unique in GNU Health) or by an alternative ID (a medical record
number: `gnuhealth.person_alternative_identification.code`, which GNU Health does not keep unique).
`MR-2000` is held by two people: the identifier a clinic searches by that names more than one patient.
"""

from tests.gnuhealth import rpc

FRONT_DESK = ("frontdesk", "Front-desk-pass-1", "Health Front Desk")
REFUSED = ("reception", "Reception-pass-1", "Health Front Desk")
"""The login the tests send a wrong password for: GNU Health slows every later login of a name after a
failure (a random wait of up to 2**failures - 1 seconds), so `frontdesk` is never the one refused."""
DOCTORS = (
    ("dreyes", "Doctor-pass-1", "Dana", "Reyes"),
    ("sokafor", "Doctor-pass-2", "Sam", "Okafor"),
)
PATIENTS = (
    # PUID, given name, family name, gender, alternative medical record number
    ("GH-1001", "Ava", "Thompson", "f", None),
    ("GH-1002", "Liam", "Garcia", "m", "MR-1002"),
    ("GH-2001", "Chris", "Morgan", "m", "MR-2000"),
    ("GH-2002", "Chris", "Morgan", "f", "MR-2000"),
)
COUNTRY = "XXX"
"""`fed_country`: GNU Health needs it on every person (the Federation's country code)."""


def seed(url: str, database: str, admin_password: str) -> None:
    session = rpc.Session.login(url, database, "admin", admin_password)
    groups = _groups(session)
    for login, password, group in (FRONT_DESK, REFUSED):
        _user(session, login, password, login.title(), [groups[group]])
    for login, password, given, family in DOCTORS:
        uid = _user(session, login, password, f"Dr. {given} {family}", [groups["Health Doctor"]])
        party = _person(session, given, family, "u", is_healthprof=True, internal_user=uid)
        session.call("model.gnuhealth.healthprofessional.create", [{"party": party}], {})
    for puid, given, family, gender, record_number in PATIENTS:
        party = _person(session, given, family, gender, is_patient=True, ref=puid)
        if record_number:
            _alternative_id(session, party, record_number)
        session.call("model.gnuhealth.patient.create", [{"party": party}], {})


def _groups(session: rpc.Session) -> dict[str, int]:
    found = session.call("model.res.group.search_read", [], 0, None, None, ["name"], {})
    return {g["name"]: g["id"] for g in found}


def _user(session: rpc.Session, login: str, password: str, name: str, groups: list[int]) -> int:
    values = {"login": login, "password": password, "name": name, "groups": [["add", groups]]}
    [uid] = session.call("model.res.user.create", [values], {})
    return int(uid)


def _person(session: rpc.Session, given: str, family: str, gender: str, **flags: object) -> int:
    values = {
        "name": given,
        "lastname": family,
        "is_person": True,
        "gender": gender,
        "fed_country": COUNTRY,
        **flags,
    }
    [party] = session.call("model.party.party.create", [values], {})  # one person per call
    return int(party)


def _alternative_id(session: rpc.Session, party: int, code: str) -> None:
    created = {"code": code, "alternative_id_type": "medical_record"}
    values = {"alternative_identification": True, "alternative_ids": [["create", [created]]]}
    session.call("model.party.party.write", [party], values, {})
