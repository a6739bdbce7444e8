from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes.canvas import FakeCanvas
from tests.contract.fakes.fhir import MRN_SYSTEM

CASE = harness.Case(
    emr="canvas",
    make_fake=FakeCanvas,
    config=lambda base_url: {
        "base_url": base_url,
        "token_url": f"{base_url}/auth/token/",
        "client_id": "emrtasks",
        "client_secret": "s3cret",
        "mrn_system": MRN_SYSTEM,
        "requester_practitioner_id": "prac-3",
        "labels": ["Refill", "Lab results"],
    },
    request=TaskRequest(
        description="Call the patient back about lab results.",
        patient_mrn="MRN-1001",
        assignee_user_id="prac-1",
        phone_call_type_id="Refill",
    ),
    unknown_assignee="prac-404",
)
