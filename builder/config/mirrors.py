"""Registry mirrors and the pull policy: where an upstream image reference is pulled
from, as enterprises and air-gapped sites route pulls through Harbor, Artifactory or
a plain registry. Pure: no engine here (builder.build.upstream pulls).
"""

from __future__ import annotations

from typing import Literal, get_args

from builder.config.validation import REGISTRY_PREFIX, shown

PullPolicy = Literal["missing", "always", "never"]
PULL_POLICIES: tuple[str, ...] = get_args(PullPolicy)
DOCKER_HUB = "docker.io"
# Where a registry's API answers, where that is not its name.
REGISTRY_API = {DOCKER_HUB: "registry-1.docker.io"}


LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_local(host: str) -> bool:
    """A registry on this machine (HOST[:PORT]), spoken to over plain HTTP."""
    return host.rsplit(":", 1)[0] in LOCAL_HOSTS or host in LOCAL_HOSTS


def registry_api(host: str) -> str:
    """The host that answers the registry API for `host` (Docker Hub's differs)."""
    return REGISTRY_API.get(host, host)


def check_mirror_side(text: str) -> str:
    """One side of UPSTREAM=MIRROR: a registry host, an optional port, an optional path."""
    host = text.split("/")[0]
    if not REGISTRY_PREFIX.fullmatch(text) or not (
        "." in host or ":" in host or host == "localhost"
    ):
        raise ValueError(
            f"{shown(text)} is not a registry (HOST[:PORT][/PATH], lowercase, e.g. cr.l5d.io or "
            "registry.corp:5000/l5d)"
        )
    return text


def normalized(reference: str) -> str:
    """A reference with its registry written out, as Docker reads it
    (`debian:bookworm-slim` is `docker.io/library/debian:bookworm-slim`)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return reference
    return f"{DOCKER_HUB}/{reference}" if sep else f"{DOCKER_HUB}/library/{reference}"


def mirrored(reference: str, mirrors: tuple[tuple[str, str], ...]) -> str:
    """Where `reference` is pulled from: under the longest matching upstream's mirror,
    or the reference itself where no mirror covers it."""
    full = normalized(reference)
    matches = [(up, mirror) for up, mirror in mirrors if full.startswith(up + "/")]
    if not matches:
        return reference
    upstream, mirror = max(matches, key=lambda pair: len(pair[0]))
    return mirror + full[len(upstream) :]
