from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes import drchrono as fake

CASE = harness.Case(
    emr="drchrono",
    make_fake=fake.FakeDrChrono,
    config=lambda base_url: {
        "base_url": base_url,
        "client_id": fake.CLIENT_ID,
        "client_secret": fake.CLIENT_SECRET,
        "refresh_token": fake.FIRST_REFRESH_TOKEN,
        "task_status_id": fake.OPEN_STATUS,
    },
    request=TaskRequest(
        description="Patient asks for a refill of lisinopril 10 mg; pharmacy on file.",
        patient_mrn="MRN-1001",
        subject="Refill request",
        assignee_user_id="201",
        phone_call_type_id="401",
    ),
    unknown_assignee="999",
)
