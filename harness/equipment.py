"""Which proxy the tests, benchmarks and demos run: the real one wherever it exists.

The real linkerd2-proxy is test equipment beside the checkout
(`../shared/test-equipment/linkerd2-proxy/linkerd2-proxy`, always present in
CI); `PROXY_FILE` names another binary. Where neither exists, the stand-in (its
source in tests/standin-proxy) is built and used, and says so everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from builder.build.gobuild import cached_go_binary
from builder.config.sources import GoSource

ROOT = Path(__file__).resolve().parent.parent
SHARED_EQUIPMENT = ROOT.parent / "shared" / "test-equipment"
REAL_PROXY = SHARED_EQUIPMENT / "linkerd2-proxy" / "linkerd2-proxy"
# Linkerd's CRDs as `linkerd install --crds` renders them (test data in shared/).
LINKERD_CRDS = ROOT.parent / "shared" / "reference" / "linkerd-crds" / "linkerd-crds.yaml"
STANDIN_MODULE = ROOT / "tests" / "standin-proxy"


def real_proxy() -> Path | None:
    """The real proxy binary: PROXY_FILE if set, else the shared test equipment."""
    named = os.environ.get("PROXY_FILE")
    if named:
        return Path(named).resolve()
    return REAL_PROXY if REAL_PROXY.is_file() else None


def standin_proxy(arch: str = "amd64") -> Path:
    """The stand-in (test equipment, not a Linkerd proxy) for `arch`, built and cached."""
    return cached_go_binary(GoSource(package=".", local=STANDIN_MODULE), arch)


def proxy_for_tests() -> tuple[Path, bool]:
    """(the proxy binary to build test images with, whether it is the real one)."""
    real = real_proxy()
    return (real, True) if real is not None else (standin_proxy(), False)


# The upstream Faces v2.0.0 programs (smiley, color, face), built from source
# (test equipment; always present in CI).
REAL_FACES = SHARED_EQUIPMENT / "faces"
FACES_WORKLOADS = ("smiley", "color", "face")
COMPONENTS_MODULE = ROOT / "go"


def real_faces() -> dict[str, Path] | None:
    """The upstream binaries by workload name, or None where they are missing."""
    found = {name: REAL_FACES / name for name in FACES_WORKLOADS}
    return found if all(path.is_file() for path in found.values()) else None


def our_faces() -> dict[str, Path]:
    """Our Faces-compatible builds from go/, built and cached by content."""
    return {
        name: cached_go_binary(GoSource(package=f"./cmd/{name}", local=COMPONENTS_MODULE), "amd64")
        for name in FACES_WORKLOADS
    }


# Linkerd's control plane built from source (test equipment; always in CI).
CONTROL_PLANE = SHARED_EQUIPMENT / "linkerd-control-plane"


def kind_e2e_inputs() -> tuple[dict[str, Any], list[str]]:
    """What the e2e on kind takes from the test equipment (kind_e2e_config's keywords),
    or what of it is missing."""
    from builder.check.walkthrough.kind import kind_inputs
    from builder.core.errors import CheckError

    proxy = real_proxy()
    if proxy is None:
        return {}, [f"the real linkerd2-proxy ({REAL_PROXY})"]
    try:
        return kind_inputs(linkerd_dir=CONTROL_PLANE, faces_dir=REAL_FACES, proxy=proxy), []
    except CheckError as exc:
        return {}, [exc.message]
