"""The overview's chart as SVG drawn on the server: one stacked bar per hour, a part per status. Pure:
geometry in, numbers out; the template writes the elements (no script, no inline style)."""

from dataclasses import dataclass

from emrtasks.service import console

WIDTH, HEIGHT = 760, 220
LEFT, BOTTOM, TOP = 40, 24, 10
ORDER = ("created", "failed", "unknown", "processing")


@dataclass(frozen=True)
class Part:
    status: str
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    parts: list[Part]
    ticks: list[Tick]
    top: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM


def draw(hours: list[console.Hour]) -> Chart:
    top = _nice(max((h.accepted for h in hours), default=0))
    slot = (WIDTH - LEFT) / max(len(hours), 1)
    scale = (HEIGHT - BOTTOM - TOP) / top
    parts, ticks = [], []
    for i, hour in enumerate(hours):
        x, y = LEFT + i * slot + slot * 0.15, float(HEIGHT - BOTTOM)
        for status in ORDER:
            n = hour.counts.get(status, 0)
            if n:
                y -= n * scale
                label = f"{hour.start:%H}:00 UTC: {n} {status}"
                parts.append(
                    Part(status, round(x, 1), round(y, 1), round(slot * 0.7, 1), round(n * scale, 1), label)
                )
        if i % 3 == 0:
            ticks.append(Tick(round(x + slot * 0.35, 1), f"{hour.start:%H}:00"))
    return Chart(parts, ticks, top)


def _nice(most: int) -> int:
    """A round top for the scale: 1, 2, 5, 10, 20, 50, ... at or above the tallest bar."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= most:
                return max(step * factor, 1)
        step *= 10
