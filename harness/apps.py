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

from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.engine import docker_engine

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
