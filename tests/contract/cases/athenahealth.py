from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes import athenahealth as fake

CASE = harness.Case(
    emr="athenahealth",
    make_fake=fake.FakeAthena,
    config=lambda base_url: {
        "base_url": base_url,
        "practice_id": fake.PRACTICE_ID,
        "department_id": fake.DEPARTMENT_ID,
        "client_id": fake.CLIENT_ID,
        "client_secret": fake.CLIENT_SECRET,
        "mrn_custom_field_id": fake.MRN_FIELD,
        "subclasses": [{"code": code, "display": name} for code, name in fake.SUBCLASSES.items()],
    },
    request=TaskRequest(
        description="Patient asks whether to keep taking lisinopril before her procedure.",
        patient_mrn="MRN-1001",
        subject="Medication question",
        assignee_user_id="71",
        phone_call_type_id="CLINICALQUESTION",
    ),
    unknown_assignee="999",
)
