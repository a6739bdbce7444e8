"""An operator's cap on one EMR connection (its `rate_per_second` setting): at most `rate` job starts
per second within this process. The vendors' own budgets are counted per call, across processes, in
storage/rate_limits.py."""

import asyncio
import time


class RateLimiter:
    """Spaces starts 1/rate seconds apart per key; a worker process's share of a vendor's limit."""

    def __init__(self) -> None:
        self._next_start: dict[str, float] = {}

    async def wait(self, key: str, rate: float | None) -> None:
        if not rate:
            return
        now = time.monotonic()
        start = max(now, self._next_start.get(key, now))
        self._next_start[key] = start + 1.0 / rate
        if start > now:
            await asyncio.sleep(start - now)
