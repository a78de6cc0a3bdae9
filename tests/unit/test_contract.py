"""Version-dependent facts: release names as users write them, and each fact changing
exactly where the contract says it does."""

from __future__ import annotations

import re

import pytest

from builder.config.contract import (
    EDGE_BY_LINE,
    PROXY_BY_RELEASE,
    facts_for,
    release_at_least,
    release_of,
)
from builder.config.settings import load_settings
from builder.core.errors import SettingsError
from harness import equipment
from tests.conftest import need

FACTS_FILE = equipment.ROOT.parent / "shared" / "reference" / "upstream-images.md"
# | 2.20 | edge-26.6.3 (...) | v2.359.0 |, | (walk-through) | edge-24.2.5 | v2.222.0 (...) |
FACTS_ROW = re.compile(
    r"^ *\| (?P<line>2\.\d+|[a-z() -]+) \| (?P<edge>edge-[\d.]+)[^|]*\| (?P<proxy>v[\d.]+)",
    re.MULTILINE,
)


def test_every_line_of_the_facts_file_is_mapped() -> None:
    """Our tables say what upstream's release pipeline says (the facts file, with sources)."""
    need(FACTS_FILE.is_file(), f"the facts file {FACTS_FILE}")
    rows = list(FACTS_ROW.finditer(FACTS_FILE.read_text()))
    assert len(rows) >= 8, "the facts file's release table was not found"
    for row in rows:
        assert PROXY_BY_RELEASE[row["edge"]] == row["proxy"], row[0]
        if row["line"].startswith("2."):
            assert EDGE_BY_LINE[row["line"]] == row["edge"], row[0]
            assert facts_for(row["line"]).proxy_version == row["proxy"]


@pytest.mark.parametrize("line", sorted(EDGE_BY_LINE))
def test_a_line_names_its_edge_release_as_the_proxy_image_tag(line: str) -> None:
    settings = load_settings(None, {"linkerd_version": line})
    assert settings.proxy().ref == f"cr.l5d.io/linkerd/proxy:{EDGE_BY_LINE[line]}"
    # Upstream never tags a proxy image by the proxy's own version.
    assert not settings.proxy().ref.split(":")[-1].startswith("v")


def test_the_default_names_the_2_20_release() -> None:
    settings = load_settings(None, {})
    assert settings.proxy().ref == "cr.l5d.io/linkerd/proxy:edge-26.6.3"
    assert settings.facts.proxy_version == "v2.359.0"


def test_an_edge_release_renders_with_its_own_tag_and_proxy() -> None:
    settings = load_settings(None, {"linkerd_version": "edge-26.8.3"})
    assert settings.proxy().ref == "cr.l5d.io/linkerd/proxy:edge-26.8.3"
    assert settings.facts.proxy_version == "v2.366.0"
    assert settings.facts.release == "edge-26.8.3"


def test_a_release_newer_than_the_table_takes_its_proxy_version_from_elsewhere() -> None:
    """Accepted (its image tells the proxy's version at build time); without that
    version the facts say where it comes from, and given one they follow it."""
    settings = load_settings(None, {"linkerd_version": "edge-27.3.1"})
    assert settings.proxy().ref == "cr.l5d.io/linkerd/proxy:edge-27.3.1"
    assert not settings.proxy_version_known
    with pytest.raises(SettingsError, match=r"read from its image.*--proxy-version"):
        settings.facts  # noqa: B018
    given = facts_for("edge-27.3.1", "v2.380.0")
    assert given.spire_socket_env == "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"
    assert (given.max_workload_ips, given.default_iptables_mode) == (2, "nft")  # the 2.20 line's


def test_a_newer_release_with_a_proxy_file_needs_the_proxy_version(tmp_path) -> None:
    proxy = tmp_path / "linkerd2-proxy"
    proxy.write_bytes(b"\x7fELF")
    with pytest.raises(SettingsError, match=r"--proxy-version vX\.Y\.Z"):
        load_settings(None, {"linkerd_version": "edge-27.3.1", "proxy_file": (str(proxy),)})
    given = {"linkerd_version": "edge-27.3.1", "proxy_file": (str(proxy),)}
    assert load_settings(None, given | {"proxy_version": "v2.380.0"}).facts.proxy_version == (
        "v2.380.0"
    )


@pytest.mark.parametrize(
    ("release", "series"),
    [
        ("edge-24.2.4", "2.15"),
        ("edge-24.2.5", "2.15"),
        ("edge-24.8.1", "2.15"),
        ("edge-24.8.2", "2.16"),
        ("edge-25.10.7", "2.19"),
        ("edge-26.6.2", "2.19"),
        ("edge-26.8.3", "2.20"),
    ],
)
def test_an_edge_release_follows_the_newest_line_at_or_before_it(release: str, series: str) -> None:
    minor = int(series.split(".")[1])
    facts = facts_for(release, "v2.300.0")
    assert facts.max_workload_ips == (2 if minor >= 17 else 1)
    assert facts.status_subresource == (minor >= 16)
    assert facts.default_iptables_mode == ("nft" if minor >= 19 else "legacy")


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("edge-24.1.4", r"predates ExternalWorkload.*edge-24\.2\.4"),
        ("edge-23.12.1", r"predates ExternalWorkload"),
        ("2.14", r"predates ExternalWorkload"),
        ("2.9", r"predates ExternalWorkload"),
        ("stable-2.14.10", r"predates ExternalWorkload"),
        ("2.21", r"not one this tool knows; give the edge release you run"),
        ("3.0", r"not a release name"),
        ("edge-26.8.3\n", r"not a release name"),
        ("edge-２６.8.3", r"not a release name"),  # fullwidth digits: not a tag
        ("v2.359.0", r"not a release name"),
    ],
)
def test_release_names_that_cannot_be_used_are_refused_with_the_reason(
    version: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=reason) as caught:
        release_of(version)
    assert "\n" not in caught.value.message.replace(repr(version), "")


def test_releases_compare_by_date_not_by_text() -> None:
    assert release_at_least("edge-25.10.7", "edge-25.8.3")
    assert not release_at_least("edge-25.4.4", "edge-25.8.3")


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


def test_a_proxy_version_of_another_form_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"vMAJOR\.MINOR\.PATCH"):
        facts_for("2.18", "2.294")
    with pytest.raises(SettingsError, match=r"vMAJOR\.MINOR\.PATCH"):
        facts_for("2.18", "v2.294.0\n")
