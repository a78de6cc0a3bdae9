"""Linkerd's programs copied out of Linkerd's own images for the linkerd CLI's release,
cached by release: the lab's default program source.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from builder.engine import docker_engine
from builder.lab.layout import LabError, LabSources

IMAGES = {
    "controller": "cr.l5d.io/linkerd/controller",
    "policy_controller": "cr.l5d.io/linkerd/policy-controller",
    "proxy": "cr.l5d.io/linkerd/proxy",
}


PROXY_IN_IMAGE = "/usr/lib/linkerd/linkerd2-proxy"


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


def sources_from_images(linkerd: Path, cache: Path) -> LabSources:
    """Linkerd's programs copied out of its own images, for the CLI's release
    (pulled from cr.l5d.io where missing; cached by release in `cache`).
    """
    version = linkerd_version(linkerd)
    folder = cache / version
    found: dict[str, Path] = {}
    for key, repository in IMAGES.items():
        reference = f"{repository}:{version}"
        path = entrypoint_program(docker_engine.image_entrypoint(reference))
        target = folder / ("proxy-identity" if key == "proxy" else Path(path).name)
        if not target.is_file():
            docker_engine.copy_from_image(reference, path, target)
        found["proxy_identity" if key == "proxy" else key] = target
        if key == "proxy":
            proxy = folder / "linkerd2-proxy"
            if not proxy.is_file():
                docker_engine.copy_from_image(reference, PROXY_IN_IMAGE, proxy)
            found["proxy"] = proxy
    return LabSources(linkerd=linkerd, **found).check()
