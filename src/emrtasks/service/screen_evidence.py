"""What an operator gets when driving an EMR's screens fails: the page's screenshot and text at that
moment, kept as one file per failure, encrypted with the deployment's key (pages show patient data),
under `EMRTASKS_SCREEN_EVIDENCE_DIR`, deleted once older than `EMRTASKS_SCREEN_EVIDENCE_SECONDS`.
Never logged; the task's reason names the file."""

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emrtasks.storage import crypto

SUFFIX = ".evidence"


@dataclass(frozen=True)
class Evidence:
    """A failed screen step: which step, when it was kept (the keeper's clock), the screenshot (PNG
    bytes) and the page's text."""

    what: str
    kept_at: float
    screenshot: bytes
    text: str


class Keeper:
    def __init__(
        self,
        directory: Path,
        cipher: crypto.Cipher,
        keep_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._cipher = cipher
        self._keep_seconds = keep_seconds
        self._clock = clock

    async def keep(self, what: str, screenshot: bytes, text: str) -> str:
        """Seals and writes one failure's evidence; its file name."""
        return await asyncio.to_thread(self._write, what, screenshot, text)

    def read(self, name: str) -> "Evidence":
        """One file's evidence, decrypted."""
        path = self._directory / Path(name).name  # a name only: never a path elsewhere
        found = json.loads(self._cipher.decrypt(path.read_text(), _where(path.name)))
        return Evidence(
            str(found["what"]),
            float(found["kept_at"]),
            base64.b64decode(found["screenshot"]),
            str(found["text"]),
        )

    def prune(self) -> int:
        """Deletes the evidence older than the keeping time; how many files went."""
        if not self._directory.is_dir():
            return 0
        now, gone = self._clock(), 0
        for path in self._directory.glob(f"*{SUFFIX}"):
            if now - path.stat().st_mtime > self._keep_seconds:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _write(self, what: str, screenshot: bytes, text: str) -> str:
        self.prune()
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}{SUFFIX}"
        body = {
            "what": what,
            "kept_at": self._clock(),
            "screenshot": base64.b64encode(screenshot).decode(),
            "text": text,
        }
        sealed = self._cipher.encrypt(json.dumps(body), _where(name))
        descriptor = os.open(self._directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(sealed)
        now = self._clock()
        os.utime(self._directory / name, (now, now))  # aged by the same clock that prunes
        return name


def _where(name: str) -> crypto.Where:
    return crypto.Where("screen_evidence", name, "file")
