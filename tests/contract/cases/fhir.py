from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes.fhir import MRN_SYSTEM, FakeFhir

CASE = harness.Case(
    emr="fhir",
    make_fake=FakeFhir,
    config=lambda base_url: {
        "base_url": base_url,
        "mrn_system": MRN_SYSTEM,
        "token_url": f"{base_url}/token",
        "client_id": "emrtasks",
        "client_secret": "s3cret",
        "task_types": [{"code": "refill", "display": "Prescription refill"}],
    },
    request=TaskRequest(
        description="Call the patient back about lab results.",
        patient_mrn="MRN-1001",
        subject="Lab follow-up",
        assignee_user_id="prac-1",
        phone_call_type_id="refill",
        notify_list=("prac-2",),
    ),
    unknown_assignee="prac-404",
)
