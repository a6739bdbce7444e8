"""Healthie: a GraphQL createTask for patient MRN-1001 (record_identifier), assigned to a staff user
with a co-assignee; an API key, so a refused key can only mean login_required."""

from emrtasks.domain.tasks import TaskRequest
from tests.contract import harness
from tests.contract.fakes.healthie import API_KEY, FakeHealthie

CASE = harness.Case(
    emr="healthie",
    make_fake=FakeHealthie,
    config=lambda base_url: {"base_url": base_url, "api_key": API_KEY},
    request=TaskRequest(
        description="Patient asks for a refill of lisinopril 10 mg; pharmacy on file.",
        patient_mrn="MRN-1001",
        subject="Refill request",
        assignee_user_id="501",
        notify_list=("502",),
    ),
    unknown_assignee="999",
    refreshes_tokens=False,
)
