"""An EMR's rules for the unified Create Task request, as data: which fields, required or not, limits, where
each goes.
"""

from dataclasses import dataclass, field

# The order in which a missing field is named, and in which fields are reported.
FIELD_ORDER = (
    "description",
    "patient_mrn",
    "subject",
    "assignee_user_id",
    "phone_call_type_id",
    "notify_list",
)
ALWAYS_REQUIRED = ("description", "patient_mrn")
LIST_FIELDS = frozenset({"notify_list"})


@dataclass(frozen=True)
class FieldRule:
    name: str
    required: bool
    max_length: int | None = None
    max_items: int | None = None
    target: str = ""
    """Where the EMR keeps the value, for people reading the requirements."""


@dataclass(frozen=True)
class Rules:
    name: str
    emr: str
    fields: tuple[FieldRule, ...]
    assignee_identified_by: str = "EMR user id"
    patient_identified_by: str = "MRN"
    finds_by_marker: bool = True
    notes: tuple[str, ...] = field(default=())

    def rule(self, name: str) -> FieldRule | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.required)

    @property
    def unsupported(self) -> tuple[str, ...]:
        supported = {f.name for f in self.fields}
        return tuple(n for n in FIELD_ORDER if n not in supported)

    def describe(self) -> dict[str, object]:
        """The public shape of `GET /v1/tasks/requirements`."""
        return {
            "emr": self.emr,
            "rules": self.name,
            "required": list(self.required),
            "optional": list(self.optional),
            "unsupported": list(self.unsupported),
            "fields": {f.name: _describe_field(f) for f in self.fields},
            "assignee_identified_by": self.assignee_identified_by,
            "patient_identified_by": self.patient_identified_by,
            "finds_by_marker": self.finds_by_marker,
            "notes": list(self.notes),
        }


def _describe_field(rule: FieldRule) -> dict[str, object]:
    described: dict[str, object] = {
        "required": rule.required,
        "type": "array of strings" if rule.name in LIST_FIELDS else "string",
        "emr_field": rule.target,
    }
    if rule.max_length is not None:
        described["max_length"] = rule.max_length
    if rule.max_items is not None:
        described["max_items"] = rule.max_items
    return described
