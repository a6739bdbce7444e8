"""Validation of a Create Task body against an EMR's rules and user directory.

Every problem is collected; the headline (`error`, `message`) names the most important one, in the order:
unexpected fields, wrong types, missing fields (in FIELD_ORDER), unsupported fields, limits, unknown users,
unknown phone call types.
"""

import unicodedata
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from emrtasks.domain import errors, rules, tasks

_HEADLINE_ORDER = (
    "unexpected_field",
    "invalid_type",
    "missing_field",
    "unsupported_field",
    "too_long",
    "too_many",
    "user_not_found",
    "phone_call_type_not_found",
)
_HEADLINE_ERROR = {
    "unexpected_field": "unexpected_fields",
    "invalid_type": "invalid_field",
    "too_long": "limit_exceeded",
    "too_many": "limit_exceeded",
}
_FIXED_MESSAGE = {
    "user_not_found": "User not found.",
    "phone_call_type_not_found": "Phone call type not found.",
}

_Value = str | tuple[str, ...] | None


def validate_task_request(
    body: object,
    task_rules: rules.Rules,
    user_ids: Container[str],
    call_type_ids: Container[str],
) -> tasks.TaskRequest:
    """Return the trimmed request, or raise `Problem` (400) listing every problem."""
    parsed = parse(body, task_rules)
    return finish(parsed, check_directory(parsed, user_ids, call_type_ids))


@dataclass(frozen=True)
class Parsed:
    """A body checked against the rules, before the EMR's directory is consulted."""

    values: Mapping[str, _Value]
    problems: tuple[errors.FieldError, ...]

    @property
    def names_directory_entries(self) -> bool:
        """Whether checking it needs the EMR's users or call types."""
        return any(self.values.get(n) for n in ("assignee_user_id", "notify_list", "phone_call_type_id"))


def parse(body: object, task_rules: rules.Rules) -> Parsed:
    if not isinstance(body, dict):
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.")
    found: list[errors.FieldError] = list(_unexpected(body))
    values: dict[str, _Value] = {}
    for name in rules.FIELD_ORDER:
        value, problems = _check_field(name, body.get(name), task_rules)
        values[name] = value
        found.extend(problems)
    return Parsed(values, tuple(found))


def check_directory(
    parsed: Parsed, user_ids: Container[str], call_type_ids: Container[str]
) -> list[errors.FieldError]:
    return _check_directory(parsed.values, user_ids, call_type_ids)


def finish(parsed: Parsed, more: list[errors.FieldError] | None = None) -> tasks.TaskRequest:
    found = [*parsed.problems, *(more or [])]
    if found:
        raise _problem(found)
    return _to_request(parsed.values)


def _unexpected(body: Mapping[str, Any]) -> list[errors.FieldError]:
    return [errors.unexpected_field(str(key)) for key in body if key not in rules.FIELD_ORDER]


def _check_field(name: str, raw: object, task_rules: rules.Rules) -> tuple[_Value, list[errors.FieldError]]:
    value, type_error = _coerce(name, raw)
    if type_error:
        return None, [type_error]
    rule = task_rules.rule(name)
    if value is None:
        required = name in rules.ALWAYS_REQUIRED or (rule is not None and rule.required)
        return None, [_missing(name)] if required else []
    if rule is None:
        message = f"Unsupported field: {name} is not supported by this EMR ({task_rules.name} rules)."
        return None, [errors.FieldError(name, "unsupported_field", message)]
    return value, _check_limits(rule, value)


def _coerce(name: str, raw: object) -> tuple[_Value, errors.FieldError | None]:
    if name in rules.LIST_FIELDS:
        return _coerce_list(name, raw)
    if raw is None:
        return None, None
    if not isinstance(raw, str):
        return None, _invalid(name, f"Invalid field: {name} must be a string.")
    if "\x00" in raw:
        return None, _invalid(name, f"Invalid field: {name} must not contain NUL characters.")
    value = raw.strip() or None
    flaw = identifier_flaw(value) if value and name in _IDENTIFIERS else None  # after trimming
    if flaw:
        return None, _invalid(name, f"Invalid field: {name} must not contain {flaw}.")
    return value, None


# Ids sent to the EMR (in URL paths and queries, in form fields): no line breaks or other control
# characters, which no EMR's id holds. Free text (description, subject) may hold line breaks.
_IDENTIFIERS = frozenset({"patient_mrn", "assignee_user_id", "phone_call_type_id", "notify_list"})


CONTROL = "control characters"
FORMAT = "invisible format characters (Unicode category Cf)"


def identifier_flaw(text: str) -> str | None:
    """Why `text` cannot be an id, or None: control characters (category Cc), or format characters
    (Cf: U+200B zero width space, U+202E right-to-left override, U+FEFF byte order mark...), which
    make two different ids look the same, or one read backwards, to whoever checks them."""
    if text.isascii():  # the usual id: one pass in C
        return None if text.isprintable() else CONTROL
    for character in text:
        category = unicodedata.category(character)
        if category == "Cc":
            return CONTROL
        if category == "Cf":
            return FORMAT
    return None


def _coerce_list(name: str, raw: object) -> tuple[_Value, errors.FieldError | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        return None, _invalid(name, f"Invalid field: {name} must be an array of strings.")
    if any("\x00" in item for item in raw):
        return None, _invalid(name, f"Invalid field: {name} must not contain NUL characters.")
    items = tuple(item.strip() for item in raw)
    if not all(items):
        return None, _invalid(name, f"Invalid field: {name} must not contain blank entries.")
    flaw = next(filter(None, map(identifier_flaw, items)), None) if name in _IDENTIFIERS else None
    if flaw:
        return None, _invalid(name, f"Invalid field: {name} must not contain {flaw}.")
    return items or None, None


def _check_limits(rule: rules.FieldRule, value: str | tuple[str, ...]) -> list[errors.FieldError]:
    if not isinstance(value, tuple):
        return [_too_long(rule.name, rule)] if _over(value, rule) else []
    found = [_too_long(f"{rule.name}[{i}]", rule) for i, v in enumerate(value) if _over(v, rule)]
    if rule.max_items is not None and len(value) > rule.max_items:
        message = f"Invalid field: {rule.name} must have at most {rule.max_items} entries."
        found.insert(0, errors.FieldError(rule.name, "too_many", message))
    return found


def _over(value: str, rule: rules.FieldRule) -> bool:
    return rule.max_length is not None and len(value) > rule.max_length


def _too_long(field: str, rule: rules.FieldRule) -> errors.FieldError:
    message = f"Invalid field: {field} must be at most {rule.max_length} characters."
    return errors.FieldError(field, "too_long", message)


def _check_directory(
    values: Mapping[str, _Value], user_ids: Container[str], call_type_ids: Container[str]
) -> list[errors.FieldError]:
    found = []
    assignee = values["assignee_user_id"]
    if isinstance(assignee, str) and assignee not in user_ids:
        found.append(_unknown_user("assignee_user_id", assignee))
    notify = values["notify_list"]
    for index, user_id in enumerate(notify if isinstance(notify, tuple) else ()):
        if user_id not in user_ids:
            found.append(_unknown_user(f"notify_list[{index}]", user_id))
    call_type = values["phone_call_type_id"]
    if isinstance(call_type, str) and call_type not in call_type_ids:
        message = f"Phone call type not found: {errors.echo(call_type)}."
        found.append(errors.FieldError("phone_call_type_id", "phone_call_type_not_found", message))
    return found


def _unknown_user(field: str, user_id: str) -> errors.FieldError:
    return errors.FieldError(field, "user_not_found", f"User not found: {errors.echo(user_id)}.")


def _missing(name: str) -> errors.FieldError:
    return errors.FieldError(name, "missing_field", f"Missing required field: {name}")


def _invalid(name: str, message: str) -> errors.FieldError:
    return errors.FieldError(name, "invalid_type", message)


def _problem(found: list[errors.FieldError]) -> errors.Problem:
    first_code = min((e.code for e in found), key=_HEADLINE_ORDER.index)
    headline = next(e for e in found if e.code == first_code)
    if first_code == "unexpected_field":
        names = errors.name_list([str(e.field) for e in found if e.code == first_code])
        message = f"Unexpected fields in request body: {names}"
    else:
        message = _FIXED_MESSAGE.get(first_code, headline.message)
    return errors.Problem(400, _HEADLINE_ERROR.get(first_code, first_code), message, tuple(found))


def _to_request(values: Mapping[str, _Value]) -> tasks.TaskRequest:
    def text(name: str) -> str | None:
        value = values[name]
        return value if isinstance(value, str) else None

    notify = values["notify_list"]
    return tasks.TaskRequest(
        description=text("description") or "",
        patient_mrn=text("patient_mrn") or "",
        subject=text("subject"),
        assignee_user_id=text("assignee_user_id"),
        phone_call_type_id=text("phone_call_type_id"),
        notify_list=notify if isinstance(notify, tuple) else (),
    )
