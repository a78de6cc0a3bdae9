"""How the CLI shows long work (part of the CLI layer: it prints).

Like buildx's `--progress`: `auto` is a live view of the running phases, each
with its elapsed time, on a terminal (rich), and plain lines elsewhere;
`plain` is plain lines with every line of the engine's output; `quiet` shows
nothing. In plain lines no phase goes more than HEARTBEAT seconds without a
line saying what it is doing (its last output, e.g. debootstrap's stage, or a
Go build's package and elapsed time). A failure always carries the last lines
of the failed step (the errors do), whatever the mode.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from builder.core.progress import Progress, passing_over

MODES = ("auto", "plain", "quiet")
HEARTBEAT = 20.0


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Running:
    """One phase under way, for the heartbeat."""

    started: float
    last_said: float
    last_line: str = field(default="")


class PlainDisplay(Progress):
    """Plain lines: each phase's start and end, a heartbeat in long silences, and
    (with `verbose`) every line of the work's own output.
    """

    def __init__(
        self,
        echo: Callable[[str], None],
        *,
        verbose: bool = False,
        heartbeat: float = HEARTBEAT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.echo, self.verbose, self.heartbeat, self.clock = echo, verbose, heartbeat, clock
        self.running: dict[str, Running] = {}
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = self.clock()
        with self.lock:
            self.running[name] = Running(now, now)
        self.echo(f"{name} ...")
        try:
            yield
        except BaseException:
            if passing_over():  # the next alternative is tried: not a failure
                self.echo(f"{name}: not available, trying the next source")
            else:
                self.echo(f"{name}: failed after {elapsed(self.clock() - now)}")
            raise
        finally:
            with self.lock:
                self.running.pop(name, None)
        self.echo(f"{name}: done in {elapsed(self.clock() - now)}")

    def line(self, text: str) -> None:
        now = self.clock()
        with self.lock:
            # Lines belong to the newest phase (the engine's to the image being built).
            if self.running:
                newest = max(self.running.values(), key=lambda r: r.started)
                newest.last_line = text.strip()
                if self.verbose:
                    newest.last_said = now
        if self.verbose:
            self.echo(f"  | {text}")

    def tick(self) -> None:
        """Say something about each phase that has been silent for `heartbeat` seconds."""
        now = self.clock()
        with self.lock:
            quiet = [
                (name, run)
                for name, run in self.running.items()
                if now - run.last_said >= self.heartbeat
            ]
            for _, run in quiet:
                run.last_said = now
        for name, run in quiet:
            latest = f": {run.last_line[:100]}" if run.last_line else ""
            self.echo(f"{name}: still running, {elapsed(now - run.started)}{latest}")


class LiveDisplay(Progress):
    """A live view on a terminal: one spinner line per running phase with its time."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        self.view = RichProgress(
            SpinnerColumn(finished_text=""),
            # The name gives way (an ellipsis) before the time does, at any width.
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            expand=True,
        )

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        task: TaskID = self.view.add_task(name, total=1)
        try:
            yield
        except BaseException:
            if passing_over():  # an alternative passed over: no line of its own
                self.view.remove_task(task)
            else:
                self.view.update(task, description=f"[red]✗ {name}: failed", completed=1)
                self.view.stop_task(task)
            raise
        self.view.update(task, description=f"[green]✓[/green] {name}", completed=1)
        self.view.stop_task(task)

    def line(self, text: str) -> None:
        if self.verbose:
            self.view.console.print(f"  | {text}", markup=False, highlight=False)


class QuietDisplay(Progress):
    """Nothing at all; failures still carry their last lines."""


@contextlib.contextmanager
def display(mode: str, *, verbose: bool = False) -> Iterator[Progress]:
    """The display for `--progress MODE` (and `--verbose`), running while the block runs."""
    if mode == "quiet":
        yield QuietDisplay()
        return
    if mode == "auto" and sys.stderr.isatty():
        live = LiveDisplay(Console(stderr=True), verbose=verbose)
        with live.view:
            yield live
        return

    def echo(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    plain = PlainDisplay(echo, verbose=verbose or mode == "plain")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(1.0):
            plain.tick()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield plain
    finally:
        stop.set()
        thread.join(timeout=2)
