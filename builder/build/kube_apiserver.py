"""kube-apiserver from the Go module proxy, for the mesh lab (a real API server without
nodes): k8s.io/kubernetes cannot be `go install`ed (its staging modules are replaced by
local paths), so it is built in a module of our own that requires it and replaces each
staging module by its published version. Cached by version and Go.
"""

from __future__ import annotations

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
from builder.core.cache import cache_key, cache_root, cached_file
from builder.core.progress import Progress

KUBERNETES = "k8s.io/kubernetes"
STAGING_PIN = "v0.0.0"


def staging_replacements(kubernetes_go_mod: str, version: str) -> list[str]:
    """`replace` lines for the staging modules k8s.io/kubernetes requires at v0.0.0.

    Its go.mod points them at ./staging, which a module of ours cannot use; the
    module proxy serves each at v0.MINOR.PATCH of the release.
    """
    staged = f"v0.{version.removeprefix('v').split('.', 1)[1]}"
    modules = []
    for line in kubernetes_go_mod.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].startswith("k8s.io/") and words[1] == STAGING_PIN:
            modules.append(words[0])
    return [f"replace {module} => {module} {staged}" for module in sorted(set(modules))]


def _kubernetes_module(version: str, env: dict[str, str], source: GoSource) -> Path:
    """A module of ours that requires k8s.io/kubernetes `version` and can build it."""
    module_dir = cache_root() / "gomod" / cache_key(package=KUBERNETES, version=version)
    if (module_dir / "go.sum").is_file():
        return module_dir
    module_dir.mkdir(parents=True, exist_ok=True)
    go_mod = published_go_mod(KUBERNETES, version, module_dir, env)
    head = ["module meshexp.local/kube", "", "go 1.25", "", f"require {KUBERNETES} {version}", ""]
    (module_dir / "go.mod").write_text(
        "\n".join(head + staging_replacements(go_mod, version)) + "\n"
    )
    run_go(["get", f"{source.package}@{version}"], module_dir, env, "go get", source)
    return module_dir


def cached_kube_apiserver(version: str, progress: Progress | None = None) -> Path:
    """kube-apiserver `version` built from the Go module proxy (cached by version and Go)."""
    source = GoSource(package=f"{KUBERNETES}/cmd/kube-apiserver", version=version)
    key = cache_key(package=source.package, version=version, go=go_version(), ldflags=LDFLAGS)
    return cached_file(
        cache_root() / "go" / key,
        "kube-apiserver",
        f"go build kube-apiserver {version}",
        lambda scratch: _build(source, version, scratch / "kube-apiserver", progress),
        progress,
    )


def _build(source: GoSource, version: str, out: Path, progress: Progress | None) -> None:
    env = build_environment(HOST_ARCH, cgo=False)
    major, minor = version.removeprefix("v").split(".")[:2]
    ldflags = (
        f"{LDFLAGS} -X k8s.io/component-base/version.gitVersion={version}"
        f" -X k8s.io/component-base/version.gitMajor={major}"
        f" -X k8s.io/component-base/version.gitMinor={minor}"
    )
    phase = (progress or Progress()).phase(
        f"go build kube-apiserver {version} (about 11 minutes cold on 2 cores; cached afterwards)"
    )
    with phase:
        module_dir = _kubernetes_module(version, dict(env, GOOS="", GOARCH="", GOFLAGS=""), source)
        command = ["build", "-ldflags", ldflags, "-o", str(out), source.package]
        run_go(command, module_dir, env, "go build", source)
