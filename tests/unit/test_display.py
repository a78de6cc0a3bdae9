"""Progress as the CLI shows it: phases, heartbeats in long silences, the quiet build log."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from rich.console import Console

from builder.build import sources
from builder.build.sources import Fetched
from builder.cli.display import LiveDisplay, PlainDisplay
from builder.config.sources import FileSource, FirstOf, GoSource, describe_source
from builder.core.errors import SourceError
from builder.core.progress import Progress, alternative, as_progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_phase_is_never_silent_for_longer_than_the_heartbeat() -> None:
    said: list[str] = []
    clock = Clock()
    plain = PlainDisplay(said.append, heartbeat=20, clock=clock)
    with plain.phase("go build github.com/spiffe/spire/cmd/spire-server@v1.13.3"):
        for _ in range(30):  # ten minutes of a Go build that prints nothing
            clock.now += 20
            plain.tick()
    beats = [line for line in said if "still running" in line]
    assert len(beats) == 30
    assert beats[-1].startswith("go build github.com/spiffe/spire/cmd/spire-server@v1.13.3")
    assert beats[-1].endswith("still running, 10m00s")
    assert said[-1].endswith("done in 10m00s")


def test_the_heartbeat_names_the_latest_stage_and_the_log_stays_quiet() -> None:
    said: list[str] = []
    clock = Clock()
    plain = PlainDisplay(said.append, heartbeat=20, clock=clock)
    with plain.phase("base image meshexp/debian-base:bookworm"):
        plain.line("debootstrap: I: Retrieving InRelease")
        plain.line("debootstrap: I: Extracting libc6...")
        clock.now += 5
        plain.tick()  # not yet silent for 20 s
        clock.now += 15
        plain.tick()
    assert not any(line.startswith("  | ") for line in said)  # the lines themselves stay hidden
    assert said[1] == (
        "base image meshexp/debian-base:bookworm: still running, 20s: "
        "debootstrap: I: Extracting libc6..."
    )


def test_verbose_shows_every_line_and_counts_as_speaking() -> None:
    said: list[str] = []
    clock = Clock()
    plain = PlainDisplay(said.append, verbose=True, heartbeat=20, clock=clock)
    with plain.phase("image meshexp/smiley:dev"):
        clock.now += 19
        plain.line("Step 3/12 : COPY scripts/bootstrap scripts/run-proxy /usr/local/bin/")
        clock.now += 19
        plain.tick()
    assert "  | Step 3/12 : COPY scripts/bootstrap scripts/run-proxy /usr/local/bin/" in said
    assert not any("still running" in line for line in said)


def test_a_failing_phase_says_so_and_the_error_goes_on() -> None:
    said: list[str] = []
    plain = PlainDisplay(said.append, clock=Clock())
    with pytest.raises(RuntimeError), plain.phase("components image meshexp/components:x"):
        raise RuntimeError("boom")
    assert said[-1] == "components image meshexp/components:x: failed after 0s"


def test_a_plain_callable_still_receives_phases_and_lines() -> None:
    lines: list[str] = []
    progress = as_progress(lines.append)
    with progress.phase("image x"):
        progress.line("Step 1/2 : FROM base")
    assert lines[0] == "image x ..."
    assert lines[1] == "Step 1/2 : FROM base"
    assert isinstance(as_progress(progress), Progress)


def test_image_help_offers_the_progress_modes() -> None:
    from builder.cli import main

    result = CliRunner().invoke(main, ["image", "--help"])
    assert "--progress [auto|plain|quiet]" in result.output
    assert "--verbose" in result.output


def refused_then_found(progress: Progress) -> Fetched:
    """Faces' smiley: upstream's module (refused offline), then our own build (a file here)."""
    refused = GoSource(package="github.com/example/none/cmd/smiley", version="v0.0.1")
    found = FileSource(path=Path(sys.executable).resolve())

    def one(source: object, what: str, arch: str, progress: Progress | None = None) -> Fetched:
        assert progress is not None
        with progress.phase(f"go build {describe_source(source)}"):  # type: ignore[arg-type]
            if source is refused:
                raise SourceError("the Go module proxy refused it")
        return Fetched(found.path, "0" * 64, False, source=found)

    with mock.patch.object(sources, "_fetch_one", one):
        return sources.fetch(FirstOf((refused, found)), "workload/smiley", "amd64", progress)


def test_an_alternative_passed_over_is_not_shown_as_a_failure() -> None:
    said: list[str] = []
    refused_then_found(PlainDisplay(said.append, clock=Clock()))
    assert not any("failed" in line for line in said), said
    assert (
        "go github.com/example/none/cmd/smiley@v0.0.1: not available, trying the next source"
        in (" ".join(said))
    )


def test_the_last_alternative_failing_is_a_failure() -> None:
    said: list[str] = []
    plain = PlainDisplay(said.append, clock=Clock())
    with pytest.raises(SourceError), plain.phase("go build x"), alternative(more_after=False):
        raise SourceError("refused")
    assert said[-1] == "go build x: failed after 0s"


def test_the_live_view_keeps_the_time_and_drops_passed_over_phases() -> None:
    console = Console(width=80, force_terminal=True, record=True, color_system=None)
    live = LiveDisplay(console)
    with live.view:
        refused_then_found(live)
        with live.phase("go build github.com/spiffe/spire/cmd/spire-server@v1.13.3 " + "x" * 80):
            pass
    lines = [line for line in console.export_text().splitlines() if line.strip()]
    final = lines[-2:]  # the view's last frame: one line per phase still shown
    assert not any("example/none" in line for line in final), final  # passed over: gone
    assert all(line.rstrip().endswith("0:00:00") for line in final), final  # time kept
    assert any("…" in line for line in final), final  # the long name gave way
