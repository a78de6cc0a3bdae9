"""Linkerd's programs copied out of Linkerd's own images for the linkerd CLI's release,
cached by release: the lab's default program source. From edge-25.8.3 upstream ships
the policy controller inside the controller image (its own image stops there).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from builder.build.upstream import ensure_image
from builder.config.contract import POLICY_IN_CONTROLLER, release_at_least
from builder.config.settings import PROXY_IMAGE, PROXY_IN_IMAGE, Settings
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.lab.layout import LabError, LabSources

# Where each program is kept in the cache, by release.
PROGRAM_FILES = {
    "controller": "controller",
    "policy_controller": "linkerd-policy-controller",
    "proxy_identity": "proxy-identity",
    "proxy": "linkerd2-proxy",
}

CONTROLLER_IMAGE = "cr.l5d.io/linkerd/controller"
POLICY_IMAGE = "cr.l5d.io/linkerd/policy-controller"
POLICY_IN_CONTROLLER_IMAGE = "/linkerd-policy-controller"


def program_images(release: str) -> dict[str, tuple[str, str | None]]:
    """Each program -> (the upstream image that holds it, its path there; None: the
    image's entrypoint), for `release`."""
    images: dict[str, tuple[str, str | None]] = {
        "controller": (f"{CONTROLLER_IMAGE}:{release}", None),
        "proxy_identity": (f"{PROXY_IMAGE}:{release}", None),
        "proxy": (f"{PROXY_IMAGE}:{release}", PROXY_IN_IMAGE),
    }
    if release_at_least(release, POLICY_IN_CONTROLLER):
        images["policy_controller"] = (f"{CONTROLLER_IMAGE}:{release}", POLICY_IN_CONTROLLER_IMAGE)
    else:
        images["policy_controller"] = (f"{POLICY_IMAGE}:{release}", None)
    return images


def linkerd_version(linkerd: Path) -> str:
    """The release of the linkerd CLI (`edge-26.8.3`), which names the images to use."""
    done = subprocess.run(
        [str(linkerd), "version", "--client", "--short"],
        capture_output=True,
        text=True,
        check=False,
    )
    version = done.stdout.strip()
    if done.returncode != 0 or not re.match(r"^(edge|stable|enterprise)-[0-9.]+", version):
        raise LabError(f"lab: `{linkerd} version --client --short` said {version!r}")
    return version


def entrypoint_program(entrypoint: list[str]) -> str:
    """The program an entrypoint runs: past an init (tini ... --) where there is one."""
    if "--" in entrypoint:
        return entrypoint[entrypoint.index("--") + 1]
    return entrypoint[0]


def sources_from_images(
    linkerd: Path, cache: Path, settings: Settings | None = None, progress: Progress | None = None
) -> LabSources:
    """Linkerd's programs copied out of its own images, for the CLI's release (pulled as
    the settings' pull policy says, through their mirrors; cached by release in `cache`).
    """
    settings = settings or Settings()
    progress = progress or Progress()
    version = linkerd_version(linkerd)
    folder = cache / version
    found: dict[str, Path] = {}
    for key, (reference, path) in program_images(version).items():
        target = folder / PROGRAM_FILES[key]
        if not target.is_file():
            used = ensure_image(reference, settings, progress).used
            inside = path or entrypoint_program(docker_engine.image_entrypoint(used))
            docker_engine.copy_from_image(used, inside, target)
        found[key] = target
    return LabSources(linkerd=linkerd, **found).check()
