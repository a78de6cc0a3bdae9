"""Application images unlike our base, for `image --from` (tests and benchmarks): made
here from harness/apps and the real Faces smiley.

- python: a Python HTTP service on Debian (python3 from Debian's packages), USER app;
- musl: a musl program with the musl loader and nothing else: no glibc, no shell;
- scratch: FROM scratch, the static Faces smiley, USER 65532.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.build.gobuild import cached_go_binary
from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.config.sources import GoSource
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.oci import buildkit
from harness.equipment import COMPONENTS_MODULE

APPS = Path(__file__).resolve().parent / "apps"
NAMES = ("musl", "python", "scratch")
SCRATCH_DOCKERFILE = (
    'FROM scratch\nCOPY smiley /smiley\nUSER 65532\nEXPOSE 8000\nENTRYPOINT ["/smiley"]\n'
)


def app_image(name: str, context: Path, tag: str) -> str:
    """Build the application `name` from `context` (on the offline Debian base, which
    must be there) as meshexp-test-app/NAME:TAG."""
    reference = f"meshexp-test-app/{name}:{tag}"
    docker_engine.build_image(
        context=context,
        tag=reference,
        platform="linux/amd64",
        buildargs={"BASE": OFFLINE_BASE_IMAGE},
    )
    return reference


def scratch_context(folder: Path, smiley: Path) -> Path:
    """A build context for the scratch application: the static smiley alone."""
    shutil.copy(smiley, folder / "smiley")
    (folder / "smiley").chmod(0o755)
    (folder / "Dockerfile").write_text(SCRATCH_DOCKERFILE)
    return folder


@contextmanager
def applications(
    smiley: Path, scratch: Path, tag: str, names: tuple[str, ...] = NAMES
) -> Iterator[dict[str, str]]:
    """The application images named, removed again afterwards."""
    made: dict[str, str] = {}
    try:
        for name in names:
            context = scratch_context(scratch, smiley) if name == "scratch" else APPS / name
            made[name] = app_image(name, context, tag)
        yield made
    finally:
        for reference in made.values():
            docker_engine.remove_image(reference)


MULTI_PLATFORM_DOCKERFILE = (
    "FROM scratch\nARG TARGETARCH\nCOPY smiley-${TARGETARCH} /smiley\nUSER 65532\n"
    'EXPOSE 8000\nENTRYPOINT ["/smiley"]\n'
)


def scratch_index(registry: str, tag: str, folder: Path, progress: Progress | None = None) -> str:
    """The scratch application for linux/amd64 and linux/arm64 (our Faces-compatible
    smiley, static, built for each) as one index in `registry` (on this machine), built
    by a buildkitd of our own. Its reference."""

    progress = progress or Progress()
    for arch in ("amd64", "arm64"):
        binary = cached_go_binary(GoSource(package="./cmd/smiley", local=COMPONENTS_MODULE), arch)
        shutil.copy(binary, folder / f"smiley-{arch}")
        (folder / f"smiley-{arch}").chmod(0o755)
    (folder / "Dockerfile").write_text(MULTI_PLATFORM_DOCKERFILE)
    reference = f"{registry}/meshexp-test-app/scratch:{tag}"
    with buildkit.own_builder([registry], progress) as builder:
        buildkit.build(
            builder,
            context=folder,
            platform="linux/amd64,linux/arm64",
            output=f"type=image,name={reference},push=true,registry.insecure=true",
            opts={},
            on_line=progress.line,
        )
    return reference
