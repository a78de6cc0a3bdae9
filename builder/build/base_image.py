"""`meshexp-build base`: a slim Debian base image made from Debian's packages.

debootstrap (minbase) into a scratch folder, slimmed like the official slim
image (no apt lists or caches, no docs, man pages or locales, and dpkg told to
keep it that way), then `docker import`. The mirror comes from the machine's
own apt sources, never from a host name written here.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.build.gobuild import HOST_ARCH
from builder.core import image_contract, process
from builder.core.cache import cache_key, cache_root
from builder.core.errors import BuildError
from builder.core.progress import Progress, stream_command
from builder.engine import docker_engine

SUITE = "bookworm"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

DPKG_EXCLUDES = """\
# Like the official slim image: no docs, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""
APT_CLEAN = """\
# Keep no package caches in image layers.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Recommends "false";
"""
SLIM_PATHS = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/groff",
    "usr/share/lintian",
    "var/log",
    "var/cache/debconf",
)


@dataclass(frozen=True)
class BaseResult:
    reference: str
    image_id: str
    mirror: str
    reused: bool


def apt_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The first Debian mirror (not the security archive) in the machine's apt sources."""
    files: list[Path] = []
    for item in sources:
        if item.is_dir():
            files += sorted(item.glob("*.sources")) + sorted(item.glob("*.list"))
        elif item.is_file():
            files.append(item)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        found: list[str] = re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M
        )
        for uri in found:
            if "security" not in uri and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    raise BuildError(
        "no Debian mirror found in /etc/apt/sources.list(.d): add one to apt's "
        "sources, or build the base another way and give it with --base-image"
    )


RECIPE_LABEL = image_contract.BASE_RECIPE


def recipe() -> str:
    """What decides the base's contents besides the mirror: a base made by another
    recipe (an older meshexp-build) is made again."""
    return cache_key(
        suite=SUITE, slim=DPKG_EXCLUDES + APT_CLEAN, paths=SLIM_PATHS, docs="copyright"
    )


def _docs_but_copyright(root: Path) -> None:
    """Drop /usr/share/doc but each package's copyright file (Debian asks that it ship)."""
    docs = root / "usr/share/doc"
    for path in sorted(docs.rglob("*"), reverse=True):
        if path.is_symlink() and path.parent == docs:
            continue  # a package's docs linked to those of one it depends on
        if path.is_symlink() or path.is_file():
            if path.name != "copyright" or path.parent.parent != docs:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _slim(root: Path, mirror: str) -> None:
    _docs_but_copyright(root)
    for relative in SLIM_PATHS:
        target = root / relative
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir(parents=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/meshexp-slim").write_text(DPKG_EXCLUDES)
    (root / "etc/apt/apt.conf.d/meshexp-clean").write_text(APT_CLEAN)
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")


def run_debootstrap(command: list[str], progress: Progress) -> tuple[int, list[str]]:
    """Run debootstrap, handing each of its lines (its stages: retrieving, validating,
    extracting, installing) to `progress`; its exit code and last lines.
    """
    return stream_command(command, lambda line: progress.line(f"debootstrap: {line}"), keep=20)


def _debootstrap_command(arch: str, root: Path, mirror: str) -> list[str]:
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise BuildError(
            "`meshexp-build base` needs debootstrap: apt-get install debootstrap "
            "(as root), or build with a base image from a registry (drop --offline)"
        )
    command = [debootstrap, "--variant=minbase", f"--arch={arch}"]
    if arch != HOST_ARCH:
        command.append("--foreign")  # the second stage runs in the root, under qemu
    return [*command, SUITE, str(root), mirror]


def _second_stage(root: Path, arch: str, progress: Progress) -> None:
    """debootstrap's second stage inside the foreign root; binfmt_misc runs it under qemu."""
    code, tail = run_debootstrap(
        ["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"], progress
    )
    if code != 0:
        lines = "\n".join(tail)
        raise BuildError(
            f"debootstrap's second stage for {arch} failed (it runs under qemu: "
            f"qemu-user-static and binfmt_misc are needed):\n{lines}"
        )


def rootfs_tarball(arch: str, progress: Progress | None = None, rebuild: bool = False) -> Path:
    """The slim Debian root of `arch` as a tarball, made once and cached by suite,
    mirror and architecture (another architecture's second stage runs under qemu).
    """
    progress = progress or Progress()
    mirror = apt_mirror()
    key = cache_key(mirror=mirror, arch=arch, recipe=recipe())
    target = cache_root() / "base" / key / "rootfs.tar"
    if target.is_file() and not rebuild:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="meshexp-base-", dir=target.parent) as scratch:
        root = Path(scratch) / "root"
        code, tail = run_debootstrap(_debootstrap_command(arch, root, mirror), progress)
        if code != 0:
            lines = "\n".join(tail)
            raise BuildError(
                f"debootstrap of {SUITE} ({arch}) from {mirror} failed (needs root and the "
                f"mirror reachable):\n{lines}"
            )
        if arch != HOST_ARCH:
            _second_stage(root, arch, progress)
        _slim(root, mirror)
        tarball = Path(scratch) / "rootfs.tar"
        process.run(
            ["tar", "-C", root, "--numeric-owner", "-cf", tarball, "."],
            what="packing the base's root file system",
            error=BuildError,
        )
        tarball.replace(target)
    return target


def build_base(
    *, reference: str, rebuild: bool = False, progress: Progress | None = None
) -> BaseResult:
    """Make (or reuse) the slim base image `reference` in the Docker engine."""
    progress = progress or Progress()
    mirror = apt_mirror()
    if not rebuild and base_is_current(reference):
        image_id = str(docker_engine.image_attrs(reference)["Id"])
        return BaseResult(reference, image_id, mirror, True)
    image_id = docker_engine.import_rootfs(
        rootfs_tarball(HOST_ARCH, progress, rebuild),
        reference,
        [
            'CMD ["bash"]',
            f'LABEL org.opencontainers.image.description="Debian {SUITE} minbase, slimmed, '
            f'made by meshexp-build base" {RECIPE_LABEL}="{recipe()}"',
        ],
    )
    return BaseResult(reference, image_id, mirror, False)


def base_is_current(reference: str) -> bool:
    """Whether `reference` is present and made by this recipe."""
    if not docker_engine.image_exists(reference):
        return False
    labels = docker_engine.image_attrs(reference)["Config"].get("Labels") or {}
    return bool(labels.get(RECIPE_LABEL) == recipe())


def ensure_offline_base(progress: Progress | None = None) -> None:
    """The offline profile's base (ours to make): built once, when missing or made by an
    older recipe."""
    from builder.config.settings import OFFLINE_BASE_IMAGE

    progress = progress or Progress()
    if not base_is_current(OFFLINE_BASE_IMAGE):
        with progress.phase(
            f"base image {OFFLINE_BASE_IMAGE} (debootstrap from Debian's packages, once)"
        ):
            build_base(reference=OFFLINE_BASE_IMAGE, progress=progress)
