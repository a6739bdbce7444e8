"""One module per EMR adapter, each defining `CASE: harness.Case`; collected automatically."""

import importlib
import pkgutil

from tests.contract import harness


def all_cases() -> list[harness.Case]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.CASE)
    return found
