"""The overview's chart: hours stacked by status, scaled to a round top, ticks every three hours."""

from datetime import UTC, datetime, timedelta

from emrtasks.service import console
from emrtasks.web.console import chart

START = datetime(2026, 12, 4, 0, tzinfo=UTC)


def _hours(counts):
    return [console.Hour(START + timedelta(hours=i), c) for i, c in enumerate(counts)]


def test_each_status_of_an_hour_is_a_part_stacked_on_the_one_below():
    drawn = chart.draw(_hours([{"created": 6, "failed": 2}] + [{}] * 23))
    created, failed = drawn.parts
    assert (created.status, failed.status) == ("created", "failed")
    assert abs(created.y + created.height - drawn.baseline) < 0.2
    assert abs(failed.y + failed.height - created.y) < 0.2
    assert abs(created.height - 3 * failed.height) < 0.5
    assert drawn.top == 10 and created.label == "00:00 UTC: 6 created"


def test_the_tallest_hour_reaches_no_higher_than_the_round_top():
    drawn = chart.draw(_hours([{"created": 37}, {"unknown": 1}] + [{}] * 22))
    assert drawn.top == 50
    tallest = drawn.parts[0]
    assert tallest.height < drawn.baseline - 10


def test_an_empty_day_draws_no_bars_and_eight_ticks():
    drawn = chart.draw(_hours([{}] * 24))
    assert drawn.parts == [] and drawn.top == 1
    assert [t.text for t in drawn.ticks] == [f"{h:02d}:00" for h in range(0, 24, 3)]
