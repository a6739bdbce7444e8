"""A FHIR R4B server on loopback for integration tests, built on fhirstarter (resources validated by
fhir.resources): Patient, Practitioner and Task create and search by identifier, and conditional
create of Tasks (If-None-Exist). In memory; run `python -m tests.fhirserver --port 8081`."""

import argparse
import os

os.environ.setdefault("FHIR_SEQUENCE", "R4B")  # before fhirstarter is imported: it reads it once

import uvicorn
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.task import Task
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext
from fhirstarter.exceptions import FHIRResourceNotFoundError, FHIRUnprocessableEntityError

STORE: dict[str, dict[str, object]] = {"Patient": {}, "Practitioner": {}, "Task": {}}
provider = FHIRProvider()


def _matches(resource: object, identifier: str | None) -> bool:
    if not identifier:
        return True
    system, _, value = identifier.rpartition("|") if "|" in identifier else ("", "", identifier)
    return any(
        i.value == value and (not system or i.system == system)
        for i in (getattr(resource, "identifier", None) or [])
    )


def _bundle(resources: list[object]) -> Bundle:
    return Bundle(type="searchset", total=len(resources), entry=[{"resource": r} for r in resources] or None)


def _create(kind: str, resource: object) -> str:
    resource.id = f"{kind.lower()}-{len(STORE[kind]) + 1}"  # type: ignore[attr-defined]
    STORE[kind][resource.id] = resource  # type: ignore[attr-defined]
    return resource.id  # type: ignore[attr-defined,no-any-return]


@provider.create(Patient)
async def patient_create(context: InteractionContext, resource: Patient) -> str:
    return _create("Patient", resource)


@provider.create(Practitioner)
async def practitioner_create(context: InteractionContext, resource: Practitioner) -> str:
    return _create("Practitioner", resource)


@provider.create(Task)
async def task_create(context: InteractionContext, resource: Task) -> Task:
    condition = context.request.headers.get("if-none-exist", "")
    if condition.startswith("identifier="):
        found = [t for t in STORE["Task"].values() if _matches(t, condition.removeprefix("identifier="))]
        if len(found) > 1:
            raise FHIRUnprocessableEntityError(
                code="duplicate", details_text="several Tasks match If-None-Exist"
            )
        if found:
            context.response.status_code = 200
            return found[0]  # type: ignore[return-value]
    for reference in [resource.for_fhir, resource.owner]:
        kind, _, key = (reference.reference if reference else "/").partition("/")
        if reference and key not in STORE.get(kind, {}):
            raise FHIRUnprocessableEntityError(
                code="not-found", details_text=f"{reference.reference} is not known"
            )
    _create("Task", resource)
    return resource


@provider.read(Task)
async def task_read(context: InteractionContext, id_: str) -> Task:
    if id_ not in STORE["Task"]:
        raise FHIRResourceNotFoundError
    return STORE["Task"][id_]  # type: ignore[return-value]


@provider.search_type(Patient)
async def patient_search(context: InteractionContext, identifier: str | None) -> Bundle:
    return _bundle([p for p in STORE["Patient"].values() if _matches(p, identifier)])


@provider.search_type(Practitioner)
async def practitioner_search(context: InteractionContext, identifier: str | None) -> Bundle:
    return _bundle([p for p in STORE["Practitioner"].values() if _matches(p, identifier)])


@provider.search_type(Task)
async def task_search(context: InteractionContext, identifier: str | None) -> Bundle:
    return _bundle([t for t in STORE["Task"].values() if _matches(t, identifier)])


app = FHIRStarter(title="emrtasks test FHIR server")
app.add_providers(provider)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
