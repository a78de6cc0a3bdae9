"""kind without `--privileged`, for engines where a privileged container cannot start.

Where the engine's capability bounding set lacks a capability (seen here:
CAP_SYS_RESOURCE), every `docker run --privileged` fails, and kind hard-codes
that flag for its node containers and for `docker exec` into them. The
adaptation rewrites those two places in a vendored copy of kind's docker
provider: the node gets every capability the engine can give, no seccomp,
AppArmor or masked system paths, every device, and /dev/kmsg; the exec
inherits the container's capabilities. Nothing else of kind changes, and a
machine where `--privileged` works builds kind unchanged (builder.cluster).
"""

from __future__ import annotations

from pathlib import Path

from builder.core.errors import SourceError

KIND_MODULE = "sigs.k8s.io/kind"
DOCKER_PROVIDER = Path("pkg/cluster/internal/providers/docker")
PRIVILEGED = '"--privileged",'
# What the node container gets instead (the engine's own privileged mode minus the
# capabilities the engine cannot give; kind adds seccomp/apparmor=unconfined itself).
NODE_FLAGS = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt",
    "systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm",
    "--device=/dev/kmsg",
)
# Part of the cache key: a change here must not reuse a kind built by an older one.
ADAPTATION = 1


class KindShapeError(SourceError):
    """kind's docker provider is not shaped as the adaptation expects."""


def _replace_once(path: Path, replacement: str) -> None:
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.strip() == PRIVILEGED]
    if len(lines) != 1:
        raise KindShapeError(
            f"{path}: expected one line {PRIVILEGED} to adapt, found {len(lines)}: this kind "
            "version differs from the one the adaptation knows; use a machine where "
            "`docker run --privileged` works, or adapt builder/build/kind_adapt.py"
        )
    indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
    new = "\n".join(f"{indent}{part}" for part in replacement.splitlines()) if replacement else ""
    old = lines[0] + "\n"
    path.write_text(text.replace(old, f"{new}\n" if new else "", 1))


def adapt_kind(root: Path) -> None:
    """Rewrite the vendored kind module at `root` (its two `--privileged` lines)."""
    flags = "\n".join(f'"{flag}",' for flag in NODE_FLAGS)
    comment = "// meshexp-build: the engine cannot start privileged containers here"
    _replace_once(root / DOCKER_PROVIDER / "provision.go", f"{comment}\n{flags}")
    _replace_once(root / DOCKER_PROVIDER / "node.go", comment)
