"""Version-dependent facts: each changes exactly where the contract says it does."""

from __future__ import annotations

import pytest

from builder.config.contract import facts_for
from builder.core.errors import SettingsError


@pytest.mark.parametrize(
    ("linkerd", "socket_env"),
    [
        ("2.15", "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"),
        ("edge-24.2.5", "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"),
        ("2.18", "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"),
        ("2.19", "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"),
        ("2.20", "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"),
    ],
)
def test_spire_socket_variable_follows_proxy_version(linkerd: str, socket_env: str) -> None:
    assert facts_for(linkerd).spire_socket_env == socket_env


def test_socket_name_follows_an_explicit_proxy_version() -> None:
    assert facts_for("2.18", "v2.304.0").spire_socket_env.endswith("WORKLOAD_API_ADDRESS")
    assert facts_for("2.18", "v2.303.9").spire_socket_env.endswith("SPIRE_SOCKET")


@pytest.mark.parametrize(
    ("linkerd", "ips", "subresource", "mode"),
    [
        ("2.15", 1, False, "legacy"),
        ("2.16", 1, True, "legacy"),
        ("2.17", 2, True, "legacy"),
        ("2.18", 2, True, "legacy"),
        ("2.19", 2, True, "nft"),
    ],
)
def test_limits_by_release(linkerd: str, ips: int, subresource: bool, mode: str) -> None:
    facts = facts_for(linkerd)
    assert (facts.max_workload_ips, facts.status_subresource, facts.default_iptables_mode) == (
        ips,
        subresource,
        mode,
    )


@pytest.mark.parametrize("proxy", ["v2.329.0", "v2.330.0"])
def test_proxies_that_cannot_talk_to_spire_are_refused(proxy: str) -> None:
    with pytest.raises(SettingsError, match=r"cannot talk to the SPIRE agent; use v2\.331\.0"):
        facts_for("2.19", proxy)


def test_unknown_versions_name_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"'2.9' is not known; use one of: 2.15"):
        facts_for("2.9")
    with pytest.raises(SettingsError, match=r"vMAJOR\.MINOR\.PATCH"):
        facts_for("2.18", "2.294")
