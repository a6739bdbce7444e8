"""Every adapter built without a resource bootstrap hands it raises one type, `base.MissingDependency`,
naming the resource (the shared EMR HTTP client, the deployment's signer)."""

import httpx
import pytest

from emrtasks import emr
from emrtasks.domain import tasks
from emrtasks.emr import base, eclinicalworks, fhir

NEEDS_HTTP = sorted(name for name in emr.MODULES if name != "sandbox")


def _connection(emr_name: str) -> tasks.Connection:
    return tasks.Connection("con_dep", "cli_dep", emr_name, emr_name, None, "active", {})


@pytest.mark.parametrize("emr_name", NEEDS_HTTP)
def test_an_adapter_built_without_the_http_client_raises_missing_dependency(emr_name):
    deps = base.AdapterDeps(sandbox_store=None, http=None)
    with pytest.raises(base.MissingDependency) as raised:
        emr.MODULES[emr_name].build(_connection(emr_name), {}, deps)
    assert raised.value.resource == base.HTTP_CLIENT


@pytest.mark.parametrize(
    ("module", "config"),
    [
        (eclinicalworks, {"token_url": "https://127.0.0.1/token", "client_id": "c"}),
        (fhir, {"auth": fhir.SMART_BACKEND, "token_url": "https://127.0.0.1/token", "client_id": "c"}),
    ],
    ids=["eclinicalworks", "fhir"],
)
async def test_an_adapter_that_signs_built_without_the_signer_raises_missing_dependency(module, config):
    async with httpx.AsyncClient() as client:
        deps = base.AdapterDeps(sandbox_store=None, http=client, signer=None)
        with pytest.raises(base.MissingDependency) as raised:
            module.build(_connection(module.NAME), config, deps)
    assert raised.value.resource == base.SIGNER
    assert raised.value.emr == module.NAME
