"""Facts of the Linkerd mesh-expansion contract that change with the version.

Every version-dependent choice in the rendered output is made here, so that a
template never compares version numbers itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from builder.core.errors import SettingsError

# Linkerd stable release -> the linkerd2-proxy it ships.
PROXY_BY_LINKERD: dict[str, str] = {
    "2.15": "v2.221.0",
    "2.16": "v2.246.0",
    "2.17": "v2.268.0",
    "2.18": "v2.294.0",
    "2.19": "v2.326.0",
    "2.20": "v2.359.0",
}
# Edge releases carry their own proxy; the demo this project grew from used this one.
PROXY_BY_EDGE: dict[str, str] = {"edge-24.2.5": "v2.221.0"}
# Edge release -> the stable series whose contract it follows.
SERIES_BY_EDGE: dict[str, str] = {"edge-24.2.5": "2.15"}

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

_PROXY_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def parse_proxy_version(text: str) -> tuple[int, int, int]:
    """Parse `v2.294.0` into a comparable tuple, or fail naming the form."""
    match = _PROXY_VERSION.match(text)
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
    proxy_version: str
    spire_socket_env: str
    max_workload_ips: int
    status_subresource: bool
    shutdown_endpoint_env: bool
    default_iptables_mode: str


def series_of(linkerd_version: str) -> str:
    """The stable series (2.NN) a Linkerd version follows."""
    if linkerd_version in SERIES_BY_EDGE:
        return SERIES_BY_EDGE[linkerd_version]
    if linkerd_version in PROXY_BY_LINKERD:
        return linkerd_version
    known = ", ".join([*PROXY_BY_LINKERD, *PROXY_BY_EDGE])
    raise SettingsError(f"Linkerd version {linkerd_version!r} is not known; use one of: {known}")


def facts_for(linkerd_version: str, proxy_version: str | None = None) -> ContractFacts:
    """Resolve the contract for a Linkerd version (and an optional proxy override)."""
    series = series_of(linkerd_version)
    proxy = proxy_version or PROXY_BY_EDGE.get(linkerd_version) or PROXY_BY_LINKERD[series]
    if proxy in BROKEN_SPIRE_PROXIES:
        raise SettingsError(
            f"proxy {proxy} cannot talk to the SPIRE agent; use v2.331.0 or later, or an older one"
        )
    minor = int(series.split(".")[1])
    new_socket_name = parse_proxy_version(proxy) >= (2, 304, 0)
    return ContractFacts(
        linkerd_version=linkerd_version,
        proxy_version=proxy,
        spire_socket_env=(
            "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"
            if new_socket_name
            else "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"
        ),
        max_workload_ips=2 if minor >= 17 else 1,
        status_subresource=minor >= 16,
        shutdown_endpoint_env=minor >= 16,
        default_iptables_mode="nft" if minor >= 19 else "legacy",
    )
