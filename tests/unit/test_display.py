"""Progress as the CLI shows it: phases, heartbeats in long silences, the quiet build log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from builder.cli.display import PlainDisplay
from builder.core.progress import Progress, as_progress


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
