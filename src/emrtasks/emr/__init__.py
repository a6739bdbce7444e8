"""EMR adapters, one module per EMR kind, registered here by name; every EMR's rules by name."""

from collections.abc import Mapping

from emrtasks.domain import errors, rules
from emrtasks.emr import (
    athenahealth,
    base,
    canvas,
    drchrono,
    eclinicalworks,
    elation,
    fhir,
    gnuhealth,
    gnuhealth_web,
    healthie,
    openemr,
    sandbox,
)

MODULES: Mapping[str, base.EmrModule] = {
    sandbox.NAME: sandbox,  # type: ignore[dict-item]
    athenahealth.NAME: athenahealth,  # type: ignore[dict-item]
    eclinicalworks.NAME: eclinicalworks,  # type: ignore[dict-item]
    elation.NAME: elation,  # type: ignore[dict-item]
    drchrono.NAME: drchrono,  # type: ignore[dict-item]
    fhir.NAME: fhir,  # type: ignore[dict-item]
    canvas.NAME: canvas,  # type: ignore[dict-item]
    healthie.NAME: healthie,  # type: ignore[dict-item]
    openemr.NAME: openemr,  # type: ignore[dict-item]
    gnuhealth.NAME: gnuhealth,  # type: ignore[dict-item]
    gnuhealth_web.NAME: gnuhealth_web,  # type: ignore[dict-item]
}


def module_for(emr_name: str) -> base.EmrModule:
    module = MODULES.get(emr_name)
    if module is None:
        known = ", ".join(sorted(MODULES))
        raise errors.Problem(400, "unknown_emr", f"Unknown EMR: {emr_name}. Known: {known}.")
    return module


def rule_sets(emr_name: str) -> dict[str, rules.Rules]:
    """An EMR's own rule sets; the sandbox also takes on every real EMR's rules, by that EMR's name."""
    found = dict(module_for(emr_name).RULE_SETS)
    if emr_name == sandbox.NAME:
        for name, module in MODULES.items():
            if name != sandbox.NAME:
                found[name] = module.RULE_SETS[module.DEFAULT_RULES]
    return found


def rules_for(emr_name: str, rules_name: str | None) -> rules.Rules:
    known = rule_sets(emr_name)
    name = rules_name or module_for(emr_name).DEFAULT_RULES
    if name not in known:
        raise errors.Problem(
            400, "unknown_rules", f"Unknown rules for {emr_name}: {name}. Known: {', '.join(known)}."
        )
    return known[name]
