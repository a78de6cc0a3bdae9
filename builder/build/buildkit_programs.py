"""buildkitd and buildctl from the Go module proxy (`publish --platform`'s builder):
`go install` refuses buildkit ("contains one or more exclude directives"), so they are
built in a module of ours that carries buildkit's exclude block. Cached by version and Go.
"""

from __future__ import annotations

import re
from pathlib import Path

from builder.build.gobuild import (
    HOST_ARCH,
    LDFLAGS,
    build_environment,
    go_version,
    published_go_mod,
    run_go,
)
from builder.config.sources import GoSource
from builder.core.cache import cache_key, cache_root, cached_files
from builder.core.progress import Progress

BUILDKIT = "github.com/moby/buildkit"
BUILDKIT_PROGRAMS = ("buildkitd", "buildctl")


def exclude_block(go_mod: str) -> str:
    """A module's `exclude ( ... )` block (comments dropped): a module of ours that
    requires it must carry the same, or `go get` refuses it.
    """
    match = re.search(r"^exclude \((.*?)^\)", go_mod, re.S | re.M)
    if match is None:
        return ""
    lines = [line for line in match.group(0).splitlines() if not line.strip().startswith("//")]
    return "\n".join(lines) + "\n"


def cached_buildkit(version: str, progress: Progress | None = None) -> dict[str, Path]:
    """buildkitd and buildctl `version`, built from the Go module proxy, cached."""
    key = cache_key(package=BUILDKIT, version=version, go=go_version(), ldflags=LDFLAGS)
    built = cached_files(
        cache_root() / "go" / key,
        BUILDKIT_PROGRAMS,
        f"go build buildkitd and buildctl {version}",
        lambda scratch: _build(version, key, scratch, progress),
        progress,
    )
    return dict(zip(BUILDKIT_PROGRAMS, built, strict=True))


def _build(version: str, key: str, scratch: Path, progress: Progress | None) -> None:
    env = build_environment(HOST_ARCH, cgo=False)
    host_env = dict(env, GOOS="", GOARCH="", GOFLAGS="")
    source = GoSource(package=f"{BUILDKIT}/cmd/buildkitd", version=version)
    phase = (progress or Progress()).phase(
        f"go build buildkitd and buildctl {version} (about 2 minutes cold; cached afterwards)"
    )
    with phase:
        module_dir = cache_root() / "gomod" / key
        module_dir.mkdir(parents=True, exist_ok=True)
        go_mod = published_go_mod(BUILDKIT, version, module_dir, host_env)
        (module_dir / "go.mod").write_text(
            f"module meshexp.local/buildkit\n\ngo 1.25\n\n{exclude_block(go_mod)}"
        )
        packages = [f"{BUILDKIT}/cmd/{name}@{version}" for name in BUILDKIT_PROGRAMS]
        run_go(["get", "-tool", *packages], module_dir, host_env, "go get -tool", source)
        for name in BUILDKIT_PROGRAMS:
            out = scratch / name
            command = ["build", "-ldflags", LDFLAGS, "-o", str(out)]
            run_go([*command, f"{BUILDKIT}/cmd/{name}"], module_dir, env, "go build", source)
