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


# What str.strip() removes (str.isspace()), spelled out: regex engines disagree on `\s` (Rust's leaves out
# U+001C..U+001F, which Python strips), and a fuzzer judging with one must agree with the server's.
WHITESPACE = (
    (0x0009, 0x000D),
    (0x001C, 0x0020),
    (0x0085, 0x0085),
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)
_WS = _class_body(WHITESPACE)
_BAD = _class_body(REFUSED_IN_IDS)
REFUSED_CLASS = _BAD
"""The body of a character class of what an id refuses (for `trimmed`)."""
_NUL = "\\u0000"


def trimmed(refused: str, most: int | None = None, *, required: bool = True) -> str:
    """A value the server trims first: then at most `most` characters, none of `refused` (a character
    class's body); blank (absent) allowed unless `required`. The length is counted after trimming, as
    the server counts it, so it is part of the pattern rather than a `maxLength` on the raw string."""
    edge = f"[^{_WS}{refused}]"
    repeat = "*" if most is None else f"{{0,{most - 2}}}"
    core = f"{edge}(?:[^{refused}]{repeat}{edge})?"
    return f"^[{_WS}]*{core if required else f'(?:{core})?'}[{_WS}]*$"


TEXT = trimmed(_NUL)
"""Required free text: not blank once trimmed, no NUL."""

OPTIONAL_TEXT = trimmed(_NUL, required=False)
"""Optional free text: blank reads as absent; no NUL."""

ID = trimmed(_BAD)
"""A required id: not blank once trimmed, and no control or format character inside."""

OPTIONAL_ID = trimmed(_BAD, required=False)
"""An optional id: blank reads as absent; otherwise as `ID`."""

ID_255 = trimmed(_BAD, 255)
OPTIONAL_ID_255 = trimmed(_BAD, 255, required=False)
OPTIONAL_TEXT_255 = trimmed(_NUL, 255, required=False)
OPTIONAL_TEXT_2048 = trimmed(_NUL, 2048, required=False)

_URL_CHARACTER = "[^\\u0000-\\u0020\\u007F]"
WEBHOOK_URL = (
    f"^[{_WS}]*(?:[Hh][Tt][Tt][Pp]://{_URL_CHARACTER}{{1,2041}}"
    f"|[Hh][Tt][Tt][Pp][Ss]://{_URL_CHARACTER}{{1,2040}})[{_WS}]*$"
)
"""An http(s) URL with a host, no space or control character inside, at most 2048 characters once
trimmed; which hosts and schemes are allowed is the deployment's (`EMRTASKS_WEBHOOK_ALLOW_INSECURE`,
`..._ALLOW_PRIVATE`)."""

OUR_ID = r"^[0-9A-Za-z_-]{1,64}$"
"""One of our ids (`evt_...`): anything else cannot name a row."""

IDEMPOTENCY_KEY = r'^(?!""$)(?:"[ -~]{1,255}"|[!-~](?:[ -~]{0,253}[!-~])?)$'
"""RFC 8941 string (quoted) or the bare key: 1 to 255 printable ASCII characters."""
