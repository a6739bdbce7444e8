from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes import elation as fake

CASE = harness.Case(
    emr="elation",
    make_fake=fake.FakeElation,
    config=lambda base_url: {
        "base_url": base_url,
        "client_id": fake.CLIENT_ID,
        "client_secret": fake.CLIENT_SECRET,
        "practice_id": fake.PRACTICE,
        "sender_user_id": fake.SENDER,
        # The contract's MRNs are not Elation chart IDs: they live on the FHIR Patient.
        "mrn_source": "fhir_identifier",
        "fhir_base_url": f"{base_url}{fake.FHIR}",
        "mrn_system": fake.MRN_SYSTEM,
    },
    request=TaskRequest(
        description="Patient asks for a refill of lisinopril 10 mg; pharmacy on file.",
        patient_mrn="MRN-1001",
        subject="Refill request",
        assignee_user_id="131074",
        notify_list=("262150", "group:851981"),
    ),
    unknown_assignee="999999",
)
