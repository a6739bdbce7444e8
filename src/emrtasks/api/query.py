"""Query strings of the list routes: a parameter the route does not take, or one given twice, is a 400
naming it, never silently ignored (a filter we do not apply would answer the wrong list)."""

from collections import Counter
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.utils import get_flat_dependant

from emrtasks.domain import errors


async def check(request: Request) -> None:
    """Declare as `_query: query.Checked` after the authentication dependencies, so a caller learns
    first whether it may ask at all."""
    taken = _taken(request.scope["route"])
    counts = Counter(name for name, _ in request.query_params.multi_items())  # in the order first given
    unknown = [name for name in counts if name not in taken]
    if unknown:
        raise _unexpected(unknown, taken)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise _repeated(repeated)


Checked = Annotated[None, Depends(check)]


def _taken(route: Any) -> tuple[str, ...]:
    """The route's query parameters, as its OpenAPI description lists them, in their order (kept on
    the route: routes are not hashable, and they live as long as the app)."""
    taken: tuple[str, ...] | None = getattr(route, "_emrtasks_query", None)
    if taken is None:
        taken = tuple(param.alias for param in get_flat_dependant(route.dependant).query_params)
        route._emrtasks_query = taken
    return taken


def _unexpected(names: list[str], taken: tuple[str, ...]) -> errors.Problem:
    takes = f"this route takes {', '.join(taken)}" if taken else "this route takes none"
    found = tuple(
        errors.FieldError(
            errors.echo(name), "unexpected_query", f"Unexpected query parameter: {errors.echo(name)}."
        )
        for name in names[: errors.MAX_ERRORS]
    )
    message = f"Unexpected query parameter: {errors.name_list(names)} ({takes})."
    return errors.Problem(400, "invalid_parameter", message, found)


def _repeated(names: list[str]) -> errors.Problem:
    found = tuple(
        errors.FieldError(name, "invalid_query", f"Invalid parameter {name}: given more than once.")
        for name in names
    )
    return errors.Problem(400, "invalid_parameter", found[0].message, found)
