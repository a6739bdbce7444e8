"""The JSON response every route returns: bodies are built as dicts and serialised once, by orjson."""

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
