"""OpenEMR: a patient message for MRN-1001 (pubpid) to the user `dreyes`, its note type a phone call
type; OAuth2 password grant with a refresh token."""

from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes.openemr import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, FakeOpenEmr

CASE = harness.Case(
    emr="openemr",
    make_fake=FakeOpenEmr,
    config=lambda base_url: {
        "base_url": base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
    },
    request=TaskRequest(
        description="Patient asks for a refill of lisinopril 10 mg; pharmacy on file.",
        patient_mrn="MRN-1001",
        subject="Refill request",
        assignee_user_id="dreyes",
        phone_call_type_id="Pharmacy",
    ),
    unknown_assignee="nobody",
    refreshes_tokens=True,
)
