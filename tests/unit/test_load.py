"""The soak's load on a fake clock: what it counts as a failure and as the longest gap
between answers, and the targets it calls in turn."""

from __future__ import annotations

import pytest

from harness import load


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def run_calls(
    monkeypatch: pytest.MonkeyPatch, answers: list[str | None], targets: object, rate: float
) -> tuple[load.LoadFigures, list[str]]:
    """The load's loop, run here until it has made len(answers) calls; what it counted
    and whom it called."""
    clock, called = FakeClock(), []
    running = load.SteadyLoad(targets, rate=rate, clock=clock, pause=clock.pause)  # type: ignore[arg-type]
    replies = iter(answers)

    def call_face(ip: str) -> str | None:
        called.append(ip)
        if len(called) == len(answers):
            running._stop.set()
        return next(replies)

    monkeypatch.setattr(load, "call_face", call_face)
    running._run()
    assert running._figures is not None
    return running._figures, called


def test_a_failure_is_counted_and_widens_the_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [None, None, "502: bad gateway", "502: bad gateway", None]
    figures, _ = run_calls(monkeypatch, answers, lambda: ["10.0.0.1"], rate=20)
    assert figures.failures == ["10.0.0.1: 502: bad gateway"] * 2
    assert figures.requests == 5
    # Answers at 0.05 s and 0.20 s with the two failures between: three intervals.
    assert figures.longest_gap == pytest.approx(3 / 20)
    assert figures.row()["failures"] == 2


def test_calls_go_round_robin_to_the_targets_in_service(monkeypatch: pytest.MonkeyPatch) -> None:
    serving = ["a", "b"]

    def targets() -> list[str]:
        if len(called) == 4:
            serving[:] = ["b"]  # taken out of service before its restart
        return list(serving)

    called: list[str] = []
    monkeypatch.setattr(load, "call_face", lambda ip: called.append(ip))
    clock = FakeClock()
    running = load.SteadyLoad(targets, rate=50, clock=clock, pause=clock.pause)

    def counting(seconds: float) -> None:
        clock.pause(seconds)
        if len(called) == 7:
            running._stop.set()

    running.pause = counting
    running._run()
    assert called == ["a", "b", "a", "b", "b", "b", "b"]
    assert running._figures is not None
    assert running._figures.failures == []
