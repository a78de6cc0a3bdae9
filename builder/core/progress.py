"""What a long operation is doing, told as it happens (no printing here).

Library code opens a named phase around each long step (the base image, each
Go build, the components image, the workload image) and passes the step's own
output lines (the engine's build log, debootstrap's stages) to `line`. The
CLI decides what to show: a live view on a terminal, plain lines elsewhere,
or nothing. The base class shows nothing, or hands every line and phase start
to one callable (what the tests and the benchmarks read).
"""

from __future__ import annotations

import contextlib
import contextvars
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator

# Set while one of several alternative sources is tried: a phase that fails then is
# passed over (the next alternative is tried), not a failure of the build.
_TRYING_AN_ALTERNATIVE = contextvars.ContextVar("trying_an_alternative", default=False)


@contextlib.contextmanager
def alternative(more_after: bool) -> Iterator[None]:
    """Around one alternative of several; `more_after`: a failure here is not the end."""
    token = _TRYING_AN_ALTERNATIVE.set(more_after)
    try:
        yield
    finally:
        _TRYING_AN_ALTERNATIVE.reset(token)


def passing_over() -> bool:
    """Whether a phase failing now is an alternative passed over (see `alternative`)."""
    return _TRYING_AN_ALTERNATIVE.get()


class Progress:
    """A sink for phases and their lines; by default it forwards them to `on_line`."""

    def __init__(self, on_line: Callable[[str], None] | None = None) -> None:
        self._on_line = on_line

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A named step; the CLI's sinks time it and show it while it runs."""
        start = time.monotonic()
        self.line(f"{name} ...")
        yield
        self.line(f"{name}: done in {time.monotonic() - start:.0f}s")

    def line(self, text: str) -> None:
        """One line of a phase's own output (shown in full only when asked for)."""
        if self._on_line is not None:
            self._on_line(text)


def as_progress(progress: Progress | Callable[[str], None] | None) -> Progress:
    """A Progress from either a Progress, a line callable, or nothing."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)


def stream_command(
    command: list[str], on_line: Callable[[str], None], keep: int = 40
) -> tuple[int, list[str]]:
    """Run `command`, handing each line of its output (stdout and stderr) to `on_line`
    as it comes; its exit code and its last `keep` lines (for an error message)."""
    tail: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            tail.append(line)
            on_line(line)
    return process.returncode, list(tail)
