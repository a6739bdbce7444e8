"""The string rules the server enforces, as JSON Schema `pattern`s for the OpenAPI document.

Bodies are read by the service's own validators (domain/validation.py, service/link.py,
service/admin.py), which trim a value first, read a blank one as absent, refuse NUL anywhere and refuse
control (Cc) or invisible format (Cf) characters inside an id. These patterns say the same, so a client
(or a fuzzer) that follows the document is neither refused for a value it was told was good nor
accepted for one it was told was bad.
"""

# Unicode categories Cc and Cf as ranges of code points (Unicode 14, Python 3.11's unicodedata; a test
# compares them with the running Python's).
REFUSED_IN_IDS: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)


def _char(code: int) -> str:
    # BMP characters as \\uXXXX (understood by ECMA-262, Python and Rust regexes); the few astral ones
    # as the character itself, which all three read as one code point.
    return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)


def _class_body(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)


_BAD = _class_body(REFUSED_IN_IDS)
_ID_CORE = rf"[^\s{_BAD}](?:[^{_BAD}]*[^\s{_BAD}])?"

TEXT = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
"""Required free text: not blank once trimmed, no NUL."""

OPTIONAL_TEXT = r"^[^\u0000]*$"
"""Optional free text: blank reads as absent; no NUL."""

ID = rf"^\s*{_ID_CORE}\s*$"
"""A required id: not blank once trimmed, and no control or format character inside."""

OPTIONAL_ID = rf"^\s*(?:{_ID_CORE}\s*)?$"
"""An optional id: blank reads as absent; otherwise as `ID`."""

WEBHOOK_URL = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020\u007F]+\s*$"
"""An http(s) URL with a host and no space or control character inside (trimmed first); which hosts and
schemes are allowed is the deployment's (`EMRTASKS_WEBHOOK_ALLOW_INSECURE`, `..._ALLOW_PRIVATE`)."""

OUR_ID = r"^[0-9A-Za-z_-]{1,64}$"
"""One of our ids (`evt_...`): anything else cannot name a row."""

IDEMPOTENCY_KEY = r'^(?!""$)(?:"[ -~]{1,255}"|[!-~](?:[ -~]{0,253}[!-~])?)$'
"""RFC 8941 string (quoted) or the bare key: 1 to 255 printable ASCII characters."""
