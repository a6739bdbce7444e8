"""EMR adapters, one module per EMR kind, registered here by name."""

from collections.abc import Mapping

from emrtasks.emr import base, sandbox

MODULES: Mapping[str, base.EmrModule] = {
    sandbox.NAME: sandbox,
}
