from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes import eclinicalworks as fake

CASE = harness.Case(
    emr="eclinicalworks",
    make_fake=fake.FakeEcw,
    config=lambda base_url: {
        "base_url": base_url,
        "token_url": f"{base_url}{fake.TOKEN_PATH}",
        "client_id": fake.CLIENT_ID,
        "mrn_system": fake.MRN_SYSTEM,
        "provider_id": fake.PROVIDER_ID,
        "location_id": fake.LOCATION_ID,
        "call_types": [
            {"code": "refill", "display": "Medication refill"},
            {"code": "labs", "display": "Lab results"},
        ],
    },
    request=TaskRequest(
        description="Patient asks for a refill of lisinopril 10 mg.\nPharmacy: CVS on Main St.",
        patient_mrn="MRN-1001",
        subject="Refill request",
        assignee_user_id="staff-7",
        phone_call_type_id="refill",
    ),
    unknown_assignee="staff-404",
    extra={"signer": fake.SIGNER},
)
