"""syft, the SBOM scanner BuildKit runs for `publish --platform`, from the Go module proxy
for the host and stamped with its version. Cached by version and Go.
"""

from __future__ import annotations

from pathlib import Path

from builder.build.gobuild import (
    HOST_ARCH,
    LDFLAGS,
    build_environment,
    go_version,
    run_go,
    tool_module,
)
from builder.config.sources import GoSource
from builder.core.cache import cache_key, cache_root, cached_file
from builder.core.progress import Progress

SYFT = "github.com/anchore/syft/cmd/syft"


def cached_syft(version: str, progress: Progress | None = None) -> Path:
    """syft `version` for the host, stamped with its version, cached. Pure Go (its SQLite
    is modernc's), so no C compiler is needed."""
    source = GoSource(package=SYFT, version=version)
    ldflags = f"{LDFLAGS} -X main.version={version.removeprefix('v')}"
    key = cache_key(package=SYFT, version=version, go=go_version(), ldflags=ldflags)
    return cached_file(
        cache_root() / "go" / key,
        "syft",
        f"go build syft {version}",
        lambda scratch: _build(source, version, ldflags, scratch / "syft", progress),
        progress,
    )


def _build(
    source: GoSource, version: str, ldflags: str, out: Path, progress: Progress | None
) -> None:
    env = build_environment(HOST_ARCH, cgo=False)
    phase = (progress or Progress()).phase(
        f"go build syft {version} (the SBOM scanner; minutes cold, cached afterwards)"
    )
    with phase:
        module_dir = tool_module(source, env)
        command = ["build", "-ldflags", ldflags, "-o", str(out), SYFT]
        run_go(command, module_dir, env, "go build", source)
