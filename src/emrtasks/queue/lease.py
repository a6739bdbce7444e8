"""What every job handler shares about its lease: the lost-lease signal and the crash allowance."""

CRASH_ALLOWANCE = 3
"""Attempts past `max_attempts` come only from workers that died mid-job (a claim raises the count
before the handler runs): after this many more, a handler stops re-running the job and gives up."""


class LeaseLost(Exception):
    """The job's fenced write matched no row: another worker holds a newer attempt, so this one's
    result is discarded (the newer attempt decides)."""


def crashed_out(attempts: int, max_attempts: int) -> bool:
    """Whether every attempt since the limit died before settling, so the job must not run again."""
    return attempts > max_attempts + CRASH_ALLOWANCE
