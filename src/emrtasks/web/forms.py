"""Reading a page's posted form: urlencoded, of bounded size, as the Link pages and the console take them."""

from urllib.parse import parse_qsl

from starlette.requests import Request


async def read_form(request: Request, max_bytes: int) -> dict[str, str] | None:
    """A urlencoded form of at most `max_bytes`, first value of each name; None for anything else
    (another media type, a larger body, bytes that are not UTF-8, a NUL in a value)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        body.append(chunk)
    try:
        pairs = parse_qsl(b"".join(body).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if "\x00" in value:
            return None
        fields.setdefault(name, value)
    return fields
