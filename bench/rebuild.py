"""Rebuild after a workload change: only the workload layer should be rebuilt.

Compared in the same run with a build that reuses nothing but the cached
component binaries (the engine's layer cache off, the Go builds cached).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench import common
from builder.build.image import build_workload_image
from builder.build.plan import plan_components
from builder.build.sources import fetch
from builder.config.catalog import load_workload_file
from builder.config.models import Workload
from builder.config.settings import Settings

TARGET_SHARE = 0.10
LAYER_STEPS = ("COPY", "RUN", "ADD")


def workload_file(folder: Path, binary: Path) -> Path:
    (folder / "smiley.yaml").write_text(
        "name: smiley\nnamespace: faces\nports:\n  - {name: http, port: 8000}\n"
        "user: {name: workload, uid: 2200}\n"
        f"binaries:\n  - name: smiley\n    source: {{file: {{path: {binary}}}}}\n"
        "command: [/opt/workload/bin/smiley, -port, '8000']\n"
    )
    return folder / "smiley.yaml"


def timed_build(
    workload: Workload, settings: Settings, tag: str, nocache: bool
) -> tuple[float, int]:
    """Seconds, and how many layer-making steps ran (not taken from the cache)."""
    lines: list[str] = []
    start = time.monotonic()
    build_workload_image(
        workload=workload, settings=settings, tag=tag, nocache=nocache, on_line=lines.append
    )
    seconds = time.monotonic() - start
    return seconds, count_rebuilt_layers(lines)


def count_rebuilt_layers(lines: list[str]) -> int:
    """Layer-making steps (COPY, RUN, ADD) of a classic-builder log not taken from the cache."""
    steps: list[tuple[str, bool]] = []
    for line in lines:
        if line.startswith("Step "):
            steps.append((line.split(" : ", 1)[1].split()[0], False))
        elif "Using cache" in line and steps:
            steps[-1] = (steps[-1][0], True)
    return sum(1 for kind, cached in steps if kind in LAYER_STEPS and not cached)


def main() -> None:
    settings = common.settings(image_name="meshexp-bench/rebuild-{workload}")
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-") as scratch:
        folder = Path(scratch)
        smiley_source = next(
            c.source
            for c in plan_components(
                load_workload_file(common.ROOT / "images/smiley.yaml"), settings
            )
            if c.role == "workload/smiley"
        )
        binary = folder / "smiley"
        shutil.copyfile(fetch(smiley_source, "workload", settings.arch).path, binary)
        workload = load_workload_file(workload_file(folder, binary))
        build_workload_image(workload=workload, settings=settings, tag="warm")
        fresh_s, fresh_layers = timed_build(workload, settings, "fresh", nocache=True)
        with binary.open("ab") as handle:
            handle.write(b"\0workload changed")
        change_s, change_layers = timed_build(workload, settings, "changed", nocache=False)
    share = change_s / fresh_s
    figures = [
        common.Figure(
            "workload-only rebuild / build reusing only cached binaries",
            share * 100,
            "%",
            f"<= {TARGET_SHARE * 100:.0f} %",
            share <= TARGET_SHARE,
        ),
        common.Figure(
            "layers rebuilt after a workload change",
            change_layers,
            "layers",
            "exactly 1",
            change_layers == 1,
        ),
        common.Figure(
            "build reusing only cached component binaries", fresh_s, "s", "reported", None
        ),
        common.Figure("workload-only rebuild", change_s, "s", "reported", None),
    ]
    common.save(
        "rebuild",
        figures,
        {
            "fresh_seconds": fresh_s,
            "fresh_layers": fresh_layers,
            "changed_seconds": change_s,
            "changed_layers": change_layers,
        },
    )


if __name__ == "__main__":
    main()
