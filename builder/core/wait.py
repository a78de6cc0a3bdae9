"""Waiting, written once: poll a condition until it holds or a time limit passes. The
condition says why it does not hold yet (`NotYet`), and the time limit's error carries
the last reason, so that a timeout says what was last seen, not only that time ran out.

The clock and the sleep are parameters, so that tests of what waits run on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class NotYet:
    """What a polled condition returns while it does not hold, and why."""

    reason: str


class TimedOut(Exception):
    """The time limit passed; `reason` is what the condition last said."""

    def __init__(self, reason: str, timeout: float) -> None:
        super().__init__(f"not within {timeout:.0f}s: {reason}")
        self.reason = reason
        self.timeout = timeout


def until(
    poll: Callable[[], T | NotYet],
    *,
    timeout: float,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `poll` until it returns anything but NotYet, and return that; it is called
    at least once. `poll` raises to stop at once (the thing waited on died). After
    `timeout` seconds: TimedOut with the last reason."""
    deadline = clock() + timeout
    while True:
        found = poll()
        if not isinstance(found, NotYet):
            return found
        if clock() >= deadline:
            raise TimedOut(found.reason, timeout)
        sleep(interval)


def later(seconds: float, clock: Callable[[], float] = time.monotonic) -> float:
    """The clock's reading `seconds` from now (a time to retry at)."""
    return clock() + seconds
