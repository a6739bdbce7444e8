"""The JSON response every route returns: bodies are built as dicts and serialised once, by orjson."""

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSON(JSONResponse):
    """A `JSONResponse` (so OpenAPI documents each answer by its model, not as a string) rendered by
    orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
