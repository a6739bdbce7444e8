"""A failed screen step's evidence: kept encrypted (no page text or image readable in the file), read
back with the deployment's key, and deleted once older than the keeping time."""

from emrtasks.service import screen_evidence
from emrtasks.storage import crypto


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_evidence_is_encrypted_at_rest_and_read_back_with_the_key(tmp_path):
    cipher = crypto.Cipher(crypto.parse_key(crypto.new_key()))
    keeper = screen_evidence.Keeper(tmp_path, cipher, 60.0, Clock())
    name = await keeper.keep("saving the appointment", b"\x89PNG-bytes", "Thompson, Ava GH-1001")
    stored = (tmp_path / name).read_text()
    assert "Thompson" not in stored and "GH-1001" not in stored and "PNG" not in stored
    found = keeper.read(name)
    assert (found.what, found.screenshot, found.text) == (
        "saving the appointment",
        b"\x89PNG-bytes",
        "Thompson, Ava GH-1001",
    )
    assert (tmp_path / name).stat().st_mode & 0o077 == 0


async def test_evidence_older_than_the_keeping_time_is_deleted(tmp_path):
    clock = Clock()
    keeper = screen_evidence.Keeper(tmp_path, crypto.Cipher(crypto.parse_key(crypto.new_key())), 60.0, clock)
    old = await keeper.keep("one", b"a", "a")
    clock.now += 61
    new = await keeper.keep("two", b"b", "b")  # keeping prunes first
    assert sorted(p.name for p in tmp_path.iterdir()) == [new]
    assert old != new
