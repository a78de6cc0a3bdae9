"""The soak's load: what it counts as a failure and as the longest gap between answers."""

from __future__ import annotations

import time

import pytest

from tests import load


def test_a_failure_is_counted_and_widens_the_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([None, None, "502: bad gateway", "502: bad gateway", None])
    monkeypatch.setattr(load, "call_face", lambda ip: next(answers, None))
    with load.SteadyLoad(lambda: ["10.0.0.1"], rate=20) as running:
        time.sleep(0.5)
        figures = running.stop()
    assert figures.failures == ["10.0.0.1: 502: bad gateway"] * 2
    assert figures.requests >= 5
    # Two failed calls between two answers: at least three call intervals without one.
    assert figures.longest_gap >= 3 / 20 * 0.95
    assert figures.row()["failures"] == 2


def test_calls_go_round_robin_to_the_targets_in_service(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    monkeypatch.setattr(load, "call_face", lambda ip: called.append(ip))
    serving = ["a", "b"]
    with load.SteadyLoad(lambda: list(serving), rate=50) as running:
        time.sleep(0.2)
        serving.remove("a")  # taken out of service before its restart
        time.sleep(0.2)
        figures = running.stop()
    assert figures.failures == []
    assert {"a", "b"} <= set(called[:4])
    assert set(called[-3:]) == {"b"}
