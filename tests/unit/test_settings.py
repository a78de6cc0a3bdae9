"""Settings: defaults, then file, then flags; each bad value fails with the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from builder.config.settings import Settings, load_settings
from builder.config.sources import FileSource, GoSource, ImageSource
from builder.core.errors import SettingsError


def test_defaults_follow_the_upstream_images() -> None:
    settings = load_settings(None, {})
    assert settings.proxy_uid == 2102
    assert settings.inbound_ports_to_ignore == (4190, 4191, 4567, 4568)
    proxy = settings.proxy()
    assert isinstance(proxy, ImageSource)
    # Upstream's names, tags and in-image paths (../shared/reference/upstream-images.md).
    assert (proxy.ref, proxy.path) == (
        "cr.l5d.io/linkerd/proxy:edge-26.6.3",
        "/usr/lib/linkerd/linkerd2-proxy",
    )
    agent = settings.spire("spire-agent")
    assert isinstance(agent, ImageSource)
    assert (agent.ref, agent.path) == (
        "ghcr.io/spiffe/spire-agent:1.13.3",
        "/opt/spire/bin/spire-agent",
    )
    assert settings.pull == "missing"
    assert settings.mirrors == {}


def test_mirrors_from_the_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "meshexp.yaml"
    config.write_text("mirrors: {cr.l5d.io: registry.corp:5000/l5d}\npull: always\n")
    settings = load_settings(config, {"mirrors": ("ghcr.io=127.0.0.1:5000/ghcr",)})
    assert dict(settings.mirrors) == {
        "cr.l5d.io": "registry.corp:5000/l5d",
        "ghcr.io": "127.0.0.1:5000/ghcr",
    }
    assert settings.pull == "always"
    assert settings.mirrored(settings.proxy().ref) == (
        "registry.corp:5000/l5d/linkerd/proxy:edge-26.6.3"
    )
    assert settings.mirrored("ghcr.io/spiffe/spire-agent:1.13.3") == (
        "127.0.0.1:5000/ghcr/spiffe/spire-agent:1.13.3"
    )
    assert settings.mirrored("debian:bookworm-slim") == "debian:bookworm-slim"


@pytest.mark.parametrize(
    "mirror",
    [
        "cr.l5d.io",  # no MIRROR
        "cr.l5d.io=",
        "cr.l5d.io=Registry.corp",
        "cr.l5d.io=registry.corp\n",
        "cr.l5d.io=registry.corp/l5d\nRUN x",
        "cr.l5d.io=registry.corp:5000/l5d:tag",
        "cr.l5d.io=noregistry/path",
        "=registry.corp",
    ],
)
def test_bad_mirrors_are_refused(mirror: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {"mirrors": (mirror,)})
    assert "\n" not in caught.value.message.replace(repr(mirror), "")


def test_file_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "meshexp.yaml"
    config.write_text(
        "linkerd_version: '2.18'\nproxy_uid: 3000\ninbound_ports_to_ignore: [1, 2]\n"
        "image_name: reg.local/{workload}\n"
    )
    settings = load_settings(config, {"proxy_uid": 3001, "outbound_ports_to_ignore": "5,6"})
    assert settings.linkerd_version == "2.18"
    assert settings.proxy_uid == 3001
    assert settings.inbound_ports_to_ignore == (1, 2)
    assert settings.outbound_ports_to_ignore == (5, 6)
    assert settings.image_reference("smiley") == "reg.local/smiley:linkerd-2.18"
    assert settings.resolved_iptables_mode == "legacy"


def test_offline_profile_sources(tmp_path: Path) -> None:
    proxy = tmp_path / "proxy"
    settings = load_settings(None, {"offline": True, "proxy_file": proxy})
    assert settings.resolved_base_image == "meshexp/debian-base:bookworm"
    assert isinstance(settings.proxy(), FileSource)
    server = settings.spire("spire-server")
    assert isinstance(server, GoSource)
    assert server.package == "github.com/spiffe/spire/cmd/spire-server"
    assert server.version == "v1.13.3"


def test_offline_without_proxy_file_says_how() -> None:
    settings = load_settings(None, {"offline": True})
    with pytest.raises(SettingsError, match=r"--proxy-file PATH"):
        settings.proxy()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"proxy_uid": 0}, r"proxy_uid: 0 is out of range \(1000-65533\)"),
        ({"inbound_ports_to_ignore": "80,x"}, r"expected a whole number"),
        ({"inbound_ports_to_ignore": "99999"}, r"out of range \(1-65535\)"),
        ({"trust_domain": "Bad Domain"}, "a DNS name"),
        ({"spire_version": "v1.13.3"}, "no leading v"),
        ({"linkerd_version": "3.0"}, "not a release name"),
        ({"pull": "sometimes"}, "missing"),
        ({"image_name": "x/{nope}"}, r"unknown field \{nope\}"),
        ({"image_name": "UPPER/{workload}"}, "not a valid image reference"),
        ({"proxy_uid": 2103}, "must differ"),
    ],
)
def test_bad_flags_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, overrides)


def test_bad_settings_file_names_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "meshexp.yaml"
    config.write_text("topology: cloud\n")
    with pytest.raises(SettingsError, match=r"meshexp.yaml: topology: 'cloud' is not one of"):
        load_settings(config, {})
    config.write_text("colour: red\n")
    with pytest.raises(SettingsError, match=r"unknown field 'colour'"):
        load_settings(config, {})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.proxy_uid = 1  # type: ignore[misc]


def test_multicall_pin_matches_the_go_module() -> None:
    from builder.config.settings import MULTICALL_SPIRE_VERSION
    from builder.core.resources import go_dir

    go_mod = (go_dir() / "go.mod").read_text()
    assert f"github.com/spiffe/spire v{MULTICALL_SPIRE_VERSION}\n" in go_mod


def test_multicall_only_where_we_build_spire_ourselves(tmp_path: Path) -> None:
    proxy = tmp_path / "proxy"
    assert not load_settings(None, {"offline": True, "proxy_file": proxy}).uses_multicall
    offline = load_settings(None, {"offline": True, "proxy_file": proxy, "spire_multicall": True})
    assert offline.uses_multicall
    assert not load_settings(None, {}).uses_multicall  # upstream images
    assert not load_settings(
        None,
        {"offline": True, "proxy_file": proxy, "topology": "production", "spire_multicall": True},
    ).uses_multicall
    assert not load_settings(
        None,
        {"offline": True, "proxy_file": proxy, "spire_version": "1.12.0", "spire_multicall": True},
    ).uses_multicall
    assert not load_settings(
        None, {"offline": True, "proxy_file": proxy, "spire_multicall": False}
    ).uses_multicall


def test_labels_from_the_file_and_from_flags_add_up(tmp_path: Path) -> None:
    config = tmp_path / "meshexp.yaml"
    config.write_text("labels:\n  org.example.team: mesh\n  org.example.tier: edge\n")
    settings = load_settings(config, {"labels": ("org.example.tier=core", "com.acme.ci=yes")})
    assert dict(settings.labels) == {
        "org.example.team": "mesh",
        "org.example.tier": "core",  # the flag wins over the file
        "com.acme.ci": "yes",
    }


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (("novalue",), "'novalue' is not KEY=VALUE"),
        (("io.meshexp.proxy-uid=0",), "io.meshexp.* is the tool's own"),
        (("Bad Key=1",), "'Bad Key' is not a label name"),
        (("org.example.note=a\nb",), "control character"),
    ],
)
def test_bad_labels_are_refused_with_the_reason(labels: tuple[str, ...], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(None, {"labels": labels})


def test_catalog_folders_from_the_file_and_from_flags(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "mine").mkdir()
    config = tmp_path / "meshexp.yaml"
    config.write_text("catalog: [team]\n")  # relative to the settings file
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config, {"catalog": (Path("mine"),)})
    assert settings.catalog == ((tmp_path / "team").resolve(), (tmp_path / "mine").resolve())
    with pytest.raises(SettingsError, match="'nope' is not a folder; make one with"):
        load_settings(None, {"catalog": (Path("nope"),)})


def test_profile_networks_default_to_private_ranges_and_are_checked() -> None:
    assert load_settings(None, {}).profile_networks == (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fd00::/8",
    )
    given = load_settings(None, {"profile_networks": "172.18.0.0/16, fd00:1::/64"})
    assert given.profile_networks == ("172.18.0.0/16", "fd00:1::/64")
    with pytest.raises(
        SettingsError, match=r"profile_networks\[0\]: '10.0.0.1/8' is not a network"
    ):
        load_settings(None, {"profile_networks": "10.0.0.1/8"})


def test_identity_style_is_a_choice() -> None:
    assert load_settings(None, {}).identity == "namespaced"
    with pytest.raises(SettingsError, match="'short' is not one of: namespaced, walkthrough"):
        load_settings(None, {"identity": "short"})
