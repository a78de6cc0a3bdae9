"""core.wait on a fake clock: it returns what the condition found, stops at once when the
condition raises, and times out with the condition's last reason after the limit."""

from __future__ import annotations

import pytest

from builder.core.wait import NotYet, TimedOut, later, until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_it_returns_what_the_condition_found_once_it_holds() -> None:
    clock = FakeClock()
    answers = iter([NotYet("starting"), NotYet("still starting"), "ready at 10.0.0.2"])
    found = until(lambda: next(answers), timeout=5, interval=0.5, clock=clock, sleep=clock.sleep)
    assert found == "ready at 10.0.0.2"
    assert clock.sleeps == [0.5, 0.5]


def test_a_false_answer_is_an_answer_not_a_wait() -> None:
    clock = FakeClock()
    assert until(lambda: False, timeout=5, clock=clock, sleep=clock.sleep) is False
    assert clock.sleeps == []


def test_after_the_limit_it_says_what_was_last_seen() -> None:
    clock = FakeClock()
    seen = iter(f"HTTP 50{n}" for n in range(100))
    with pytest.raises(TimedOut) as caught:
        until(lambda: NotYet(next(seen)), timeout=2, interval=0.5, clock=clock, sleep=clock.sleep)
    assert caught.value.reason == "HTTP 504"  # polled at 0, 0.5, 1, 1.5 and 2 s
    assert "not within 2s: HTTP 504" in str(caught.value)
    assert clock.now == 102.0


def test_a_condition_that_raises_stops_the_wait_at_once() -> None:
    clock = FakeClock()

    def died() -> NotYet:
        raise RuntimeError("the container exited")

    with pytest.raises(RuntimeError, match="exited"):
        until(died, timeout=60, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_later_is_the_clock_plus_the_seconds() -> None:
    clock = FakeClock()
    assert later(2.5, clock) == 102.5
