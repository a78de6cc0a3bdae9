"""SPIRE built with only the configured plugins against the full build, in one run.

Each build of the server and the agent starts with an empty Go build cache and an
empty component cache (the module cache stays: downloads are not what is measured),
one after the other on the same machine.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import common
from builder.build.gobuild import HOST_ARCH, cached_go_binary
from builder.config.sources import GoSource

TARGET_SHARE = 0.45
PROGRAMS = ("spire-server", "spire-agent")


@contextmanager
def empty_caches() -> Iterator[None]:
    """GOCACHE and MESHEXP_CACHE_DIR pointed at fresh folders for the block."""
    saved = {name: os.environ.get(name) for name in ("GOCACHE", "MESHEXP_CACHE_DIR")}
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-spire-") as scratch:
        os.environ["GOCACHE"] = str(Path(scratch) / "go-build")
        os.environ["MESHEXP_CACHE_DIR"] = str(Path(scratch) / "meshexp")
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def cold_build(spire_plugins: str) -> dict[str, float]:
    """Seconds for the server then the agent from empty build caches, and their sizes."""
    settings = common.settings(spire_plugins=spire_plugins)
    result: dict[str, float] = {}
    with empty_caches():
        start = time.monotonic()
        for program in PROGRAMS:
            source = settings.spire(program)
            assert isinstance(source, GoSource), source
            binary = cached_go_binary(source, HOST_ARCH)
            result[f"{program}_mb"] = binary.stat().st_size / 1e6
        result["seconds"] = time.monotonic() - start
    return result


def main() -> None:
    trimmed = cold_build("configured")
    full = cold_build("all")
    share = trimmed["seconds"] / full["seconds"]
    figures = [
        common.Figure(
            "cold SPIRE server + agent build, configured plugins / all plugins",
            share * 100,
            "%",
            f"<= {TARGET_SHARE * 100:.0f} %",
            share <= TARGET_SHARE,
        ),
        common.Figure(
            "cold build, configured plugins (server + agent)",
            trimmed["seconds"],
            "s",
            "reported",
            None,
        ),
        common.Figure(
            "cold build, all plugins (server + agent)", full["seconds"], "s", "reported", None
        ),
    ]
    for program in PROGRAMS:
        for name, run in (("configured plugins", trimmed), ("all plugins", full)):
            figures.append(
                common.Figure(f"{program}, {name}", run[f"{program}_mb"], "MB", "reported", None)
            )
    common.save("spire_build", figures, {"configured": trimmed, "all": full})


if __name__ == "__main__":
    main()
