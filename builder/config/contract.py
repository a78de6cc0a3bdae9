"""Facts of the Linkerd mesh-expansion contract that change with the version.

Every version-dependent choice in the rendered output is made here, so that a
template never compares version numbers itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from builder.core.errors import SettingsError

# Upstream tags Linkerd's images by release (`edge-YY.M.N`), never by proxy version;
# a "2.NN" line is a git tag on one edge release and has no image tag of its own
# (../shared/reference/upstream-images.md, read from upstream's release pipeline).
EDGE_BY_LINE: dict[str, str] = {
    "2.15": "edge-24.2.4",
    "2.16": "edge-24.8.2",
    "2.17": "edge-24.11.8",
    "2.18": "edge-25.4.4",
    "2.19": "edge-25.10.7",
    "2.20": "edge-26.6.3",
}
# Edge release -> the linkerd2-proxy it ships (upstream's `.proxy-version` at its tag).
# Only a default for rendering without an engine: an online build reads the version
# from the proxy image itself, so a release missing here still builds.
PROXY_BY_RELEASE: dict[str, str] = {
    "edge-24.2.4": "v2.221.0",
    "edge-24.2.5": "v2.222.0",  # the walk-through's release
    "edge-24.8.2": "v2.246.0",
    "edge-24.11.8": "v2.268.0",
    "edge-25.4.4": "v2.294.0",
    "edge-25.10.7": "v2.326.0",
    "edge-26.6.3": "v2.359.0",
    "edge-26.8.3": "v2.366.0",
}
# The first release with ExternalWorkload (Linkerd 2.15).
FIRST_RELEASE = "edge-24.2.4"
# From this release the policy controller ships inside the controller image.
POLICY_IN_CONTROLLER = "edge-25.8.3"
# Where every proxy image since edge-24.2.4 says which proxy it carries.
PROXY_VERSION_FILE = "/usr/lib/linkerd/linkerd2-proxy-version.txt"

_EDGE = re.compile(r"edge-(\d{2})\.(\d{1,2})\.(\d{1,3})", re.ASCII)
_LINE = re.compile(r"2\.(\d{1,2})", re.ASCII)

# Proxies that cannot talk to the SPIRE agent (fixed in v2.331.0).
BROKEN_SPIRE_PROXIES = ("v2.329.0", "v2.330.0")

InboundPolicy = Literal[
    "deny",
    "all-authenticated",
    "all-unauthenticated",
    "cluster-authenticated",
    "cluster-unauthenticated",
    "audit",
]
INBOUND_POLICIES: tuple[str, ...] = get_args(InboundPolicy)

_PROXY_VERSION = re.compile(r"v(\d{1,3})\.(\d{1,4})\.(\d{1,4})", re.ASCII)


def parse_proxy_version(text: str) -> tuple[int, int, int]:
    """Parse `v2.294.0` into a comparable tuple, or fail naming the form."""
    match = _PROXY_VERSION.fullmatch(text)
    if not match:
        raise SettingsError(
            f"proxy version {text!r} is not of the form vMAJOR.MINOR.PATCH (e.g. v2.294.0)"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class ContractFacts:
    """What the rendered files must follow for one Linkerd/proxy version."""

    linkerd_version: str
    # The edge release (image tag) that version names.
    release: str
    proxy_version: str
    spire_socket_env: str
    max_workload_ips: int
    status_subresource: bool
    shutdown_endpoint_env: bool
    default_iptables_mode: str
    # LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS (several addresses: IPv4 and IPv6), from
    # proxy v2.228.0 (Linkerd's chart: edge-24.4.5); before it one address only.
    outbound_listen_addrs: bool = False


def edge_key(release: str) -> tuple[int, int, int] | None:
    """`edge-26.6.3` as a comparable (26, 6, 3); None for any other form."""
    match = _EDGE.fullmatch(release)
    if match is None:
        return None
    year, month, number = (int(part) for part in match.groups())
    return year, month, number


def release_of(linkerd_version: str) -> str:
    """The edge release (the image tag) a Linkerd version names: a line (2.20) or the
    release itself (edge-26.8.3); one that predates ExternalWorkload is refused."""
    release = EDGE_BY_LINE.get(linkerd_version, linkerd_version)
    key = edge_key(release)
    lines = ", ".join(EDGE_BY_LINE)
    if key is None:
        line = _LINE.fullmatch(linkerd_version)
        if linkerd_version.startswith("stable-") or (line and int(line[1]) < 15):
            raise SettingsError(
                f"Linkerd {linkerd_version!r} predates ExternalWorkload, which mesh expansion "
                f"needs; use one of {lines}, or an edge release from {FIRST_RELEASE} on"
            )
        if line:
            raise SettingsError(
                f"Linkerd line {linkerd_version!r} is not one this tool knows; give the edge "
                f"release you run instead (edge-YY.M.N, e.g. edge-26.8.3), or one of {lines}"
            )
        raise SettingsError(
            f"Linkerd version {linkerd_version!r} is not a release name; use one of {lines}, "
            f"or an edge release such as edge-26.8.3 (edge-YY.M.N)"
        )
    first = edge_key(FIRST_RELEASE)
    assert first is not None
    if key < first:
        raise SettingsError(
            f"Linkerd {release} predates ExternalWorkload, which mesh expansion needs "
            f"(from {FIRST_RELEASE}, Linkerd 2.15); use {FIRST_RELEASE} or later"
        )
    return release


def series_of(release: str) -> str:
    """The newest 2.NN line at or before an edge release: whose contract it follows."""
    key = edge_key(release)
    assert key is not None, release
    series = [line for line, edge in EDGE_BY_LINE.items() if (edge_key(edge) or key) <= key]
    return max(series, key=lambda line: int(line.split(".")[1]))


def release_at_least(release: str, other: str) -> bool:
    """Whether edge release `release` is `other` or newer."""
    return (edge_key(release) or (0, 0, 0)) >= (edge_key(other) or (0, 0, 0))


def known_releases() -> list[str]:
    """Every line, then every edge release the table names that no line means."""
    lines = sorted(EDGE_BY_LINE, key=lambda line: int(line.split(".")[1]))
    return lines + [edge for edge in PROXY_BY_RELEASE if edge not in EDGE_BY_LINE.values()]


def known_proxy_version(linkerd_version: str) -> str | None:
    """The proxy a release ships as far as this tool's table knows (None: read its image)."""
    return PROXY_BY_RELEASE.get(release_of(linkerd_version))


def facts_for(linkerd_version: str, proxy_version: str | None = None) -> ContractFacts:
    """Resolve the contract for a Linkerd version (and the proxy it runs, where given).

    The proxy's version decides the proxy's own facts; without one the table's
    is used, and a release the table does not know needs it from its image.
    """
    release = release_of(linkerd_version)
    series = series_of(release)
    proxy = proxy_version or PROXY_BY_RELEASE.get(release)
    if proxy is None:
        raise SettingsError(
            f"Linkerd {release} is newer than this tool's table of proxy versions: its "
            "proxy's version is read from its image (`image`, `publish`, or `render` with a "
            "Docker engine that has or can pull it), or give it: --proxy-version vX.Y.Z"
        )
    parsed = parse_proxy_version(proxy)
    if proxy in BROKEN_SPIRE_PROXIES:
        raise SettingsError(
            f"proxy {proxy} cannot talk to the SPIRE agent; use v2.331.0 or later, or an older one"
        )
    minor = int(series.split(".")[1])
    return ContractFacts(
        linkerd_version=linkerd_version,
        release=release,
        proxy_version=proxy,
        spire_socket_env=(
            "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"
            if parsed >= (2, 304, 0)
            else "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"
        ),
        max_workload_ips=2 if minor >= 17 else 1,
        status_subresource=minor >= 16,
        shutdown_endpoint_env=minor >= 16,
        default_iptables_mode="nft" if minor >= 19 else "legacy",
        outbound_listen_addrs=parsed >= (2, 228, 0),
    )
