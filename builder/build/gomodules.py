"""Go programs for a kind cluster built offline: a main of ours against published modules
(one Kubernetes multi-call binary, etcd, CoreDNS), and kind itself, each cached by content.

Every module comes from the Go module proxy; the mains live in the shipped `kind/`
folder. Go runs only through builder.build.gobuild.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.build.gobuild import (
    HOST_ARCH,
    LDFLAGS,
    build_environment,
    cached_go_binary,
    go_version,
    module_folder,
    published_go_mod,
    run_go,
)
from builder.build.kind_adapt import ADAPTATION, KIND_MODULE, KindShapeError, adapt_kind
from builder.build.kube_apiserver import KUBERNETES, staging_replacements
from builder.config.sources import GoSource
from builder.core.cache import cache_key, cache_root, cached_file, tree_sha256
from builder.core.progress import Progress
from builder.core.resources import data_root

KIND_VERSION = "v0.33.0"
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"
COREDNS_VERSION = "v1.12.1"
# The Kubernetes programs the multi-call binary answers to (by argv[0]).
KUBE_PROGRAMS = (
    "kubelet",
    "kubeadm",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)


@dataclass(frozen=True)
class MainProgram:
    """A main of ours (`kind/<folder>/main.go`) built against `requires`."""

    name: str
    folder: str
    requires: tuple[tuple[str, str], ...]
    # k8s.io/kubernetes at this version: its staging modules pinned to their releases.
    kubernetes: str | None = None
    ldflags: str = LDFLAGS
    cold: str = "minutes"

    @property
    def main(self) -> Path:
        return data_root() / "kind" / self.folder

    def describe(self) -> str:
        return ", ".join(f"{module}@{version}" for module, version in self.requires)


def kube_multicall(version: str = KUBERNETES_VERSION) -> MainProgram:
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor))
    )
    return MainProgram(
        name="kube",
        folder="kube-multicall",
        requires=((KUBERNETES, version),),
        kubernetes=version,
        ldflags=f"{LDFLAGS} {stamp}",
        cold="about 11 minutes cold on 2 cores, 3 after kube-apiserver (they share packages)",
    )


def kube_command(kube: Path, name: str) -> Path:
    """The multi-call binary `kube` as `name` (a symlink beside it): kubectl for the host."""
    if name not in KUBE_PROGRAMS:
        raise ValueError(f"the multi-call binary does not answer to {name!r}")
    link = kube.parent / name
    if not link.is_symlink():
        with tempfile.TemporaryDirectory(dir=kube.parent) as scratch:
            made = Path(scratch) / name
            made.symlink_to(kube.name)
            made.replace(link)
    return link


def etcd(version: str = ETCD_VERSION) -> MainProgram:
    return MainProgram(
        name="etcd",
        folder="etcd",
        requires=(("go.etcd.io/etcd/server/v3", version),),
        cold="under a minute cold",
    )


def coredns(version: str = COREDNS_VERSION) -> MainProgram:
    return MainProgram(
        name="coredns",
        folder="coredns",
        requires=(("github.com/coredns/coredns", version),),
        cold="1 to 4 minutes cold",
    )


def cached_main_program(program: MainProgram, progress: Progress | None = None) -> Path:
    """Build (or reuse) `program` for the host; its path in the cache."""
    key = cache_key(
        name=program.name,
        main=tree_sha256(program.main, (".go",)),
        requires=program.requires,
        kubernetes=program.kubernetes,
        go=go_version(),
        ldflags=program.ldflags,
    )
    what = f"go build {program.name} ({program.describe()})"

    def build(scratch: Path) -> None:
        with (progress or Progress()).phase(f"{what}, {program.cold}; cached afterwards"):
            _build_main(program, key, scratch / program.name)

    return cached_file(cache_root() / "go" / key, program.name, what, build, progress)


def _build_main(program: MainProgram, key: str, out: Path) -> None:
    env = build_environment(HOST_ARCH, cgo=False)
    host_env = dict(env, GOOS="", GOARCH="", GOFLAGS="")
    source = program.describe()
    module_dir = cache_root() / "gomod" / key
    module_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"module meshexp.local/{program.name}", "", "go 1.25", ""]
    lines += [f"require {module} {version}" for module, version in program.requires]
    if program.kubernetes:
        go_mod = published_go_mod(KUBERNETES, program.kubernetes, module_dir, host_env)
        lines += ["", *staging_replacements(go_mod, program.kubernetes)]
    (module_dir / "go.mod").write_text("\n".join(lines) + "\n")
    shutil.copyfile(program.main / "main.go", module_dir / "main.go")
    run_go(["mod", "tidy"], module_dir, host_env, "go mod tidy", source)
    command = ["build", "-ldflags", program.ldflags, "-o", str(out), "."]
    run_go(command, module_dir, env, "go build", source)


# Where kind pins its own node image (kindest/node at a digest).
KIND_IMAGE_FILE = "pkg/apis/config/defaults/image.go"


def kind_node_image(version: str = KIND_VERSION) -> str:
    """kind `version`'s own default node image, as its source pins it (what kind runs
    without --image on a machine with registry access)."""
    path = module_folder(GoSource(package=KIND_MODULE, version=version)) / KIND_IMAGE_FILE
    return pinned_node_image(path.read_text(), where=f"kind {version} {KIND_IMAGE_FILE}")


def pinned_node_image(source: str, *, where: str) -> str:
    """The `const Image = "..."` of kind's defaults file."""
    match = re.search(r'^const Image = "(kindest/node:[^"\s]+)"$', source, re.MULTILINE)
    if match is None:
        raise KindShapeError(
            f'{where}: no `const Image = "kindest/node:..."` found: this kind version '
            "keeps its node image elsewhere; give the node image by hand or update "
            "builder/build/gomodules.py"
        )
    return match.group(1)


def cached_kind(
    version: str = KIND_VERSION, *, adapted: bool, progress: Progress | None = None
) -> Path:
    """kind `version` from the Go module proxy: as published, or adapted to an engine that
    cannot start privileged containers (builder.build.kind_adapt)."""
    source = GoSource(package=KIND_MODULE, version=version)
    if not adapted:
        return cached_go_binary(source, HOST_ARCH, progress)
    key = cache_key(package=KIND_MODULE, version=version, go=go_version(), adaptation=ADAPTATION)
    what = f"go build kind {version} without --privileged"

    def build(scratch: Path) -> None:
        with (progress or Progress()).phase(f"{what} (about 1 minute cold; cached)"):
            _build_adapted_kind(source, key, scratch / "kind")

    return cached_file(cache_root() / "go" / key, "kind", what, build, progress)


def _build_adapted_kind(source: GoSource, key: str, out: Path) -> None:
    env = build_environment(HOST_ARCH, cgo=False)
    host_env = dict(env, GOOS="", GOARCH="", GOFLAGS="")
    module_dir = cache_root() / "gomod" / key
    if module_dir.exists():  # a half-done earlier attempt: start again
        shutil.rmtree(module_dir)
    module_dir.mkdir(parents=True)
    run_go(["mod", "init", "meshexp.local/kind"], module_dir, host_env, "go mod init", source)
    package = f"{KIND_MODULE}@{source.version}"
    run_go(["get", "-tool", package], module_dir, host_env, "go get -tool", source)
    # Vendored, so the build info still names kind's own version.
    run_go(["mod", "vendor"], module_dir, host_env, "go mod vendor", source)
    adapt_kind(module_dir / "vendor" / KIND_MODULE)
    command = ["build", "-mod=vendor", "-ldflags", LDFLAGS, "-o", str(out), KIND_MODULE]
    run_go(command, module_dir, env, "go build", source)
