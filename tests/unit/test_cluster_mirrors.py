"""The cluster's side of the mirrors: the hosts.toml each upstream registry gets on the
nodes, kind's config that mounts them, and the walk-through's own pulls (node image, DNS
forwarder, Faces chart) through the same mirrors. The files' text is read back with a
TOML parser: what containerd would see is what is asserted."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from builder.build.upstream import UsedImage
from builder.check.walkthrough import kind as walk_kind
from builder.check.walkthrough.steps import (
    FACES_CHART,
    REGISTRIES,
    E2EConfig,
    e2e_registries,
    faces_install,
    missing_prerequisites,
)
from builder.cluster.providers import KindProvider, kind_config
from builder.cluster.registry_hosts import HOSTS_DIR, containerd_hosts, mirror_endpoint
from builder.config.settings import Settings
from builder.config.validation import REGISTRY_PREFIX
from builder.core.errors import SettingsError

GATEWAY = "172.18.0.1"


def test_a_mirror_on_this_machine_is_reached_at_the_gateway_over_plain_http() -> None:
    assert mirror_endpoint("127.0.0.1:5000/ghcr", GATEWAY) == f"http://{GATEWAY}:5000/v2/ghcr"
    assert mirror_endpoint("localhost:5001", GATEWAY) == f"http://{GATEWAY}:5001"
    assert mirror_endpoint("localhost", GATEWAY) == f"http://{GATEWAY}"


def test_a_remote_mirror_is_reached_by_its_name_over_https() -> None:
    assert mirror_endpoint("registry.corp:5000/l5d", GATEWAY) == (
        "https://registry.corp:5000/v2/l5d"
    )
    assert mirror_endpoint("harbor.corp", GATEWAY) == "https://harbor.corp"


def test_each_upstream_registry_gets_hosts_toml_naming_its_mirror() -> None:
    files = containerd_hosts(
        {"cr.l5d.io": "127.0.0.1:5000/l5d", "docker.io": "harbor.corp"}, GATEWAY
    )
    assert sorted(files) == ["cr.l5d.io", "docker.io"]
    l5d = tomllib.loads(files["cr.l5d.io"])
    assert l5d == {
        "server": "https://cr.l5d.io",
        "host": {
            f"http://{GATEWAY}:5000/v2/l5d": {
                "capabilities": ["pull", "resolve"],
                "override_path": True,
            }
        },
    }
    hub = tomllib.loads(files["docker.io"])
    assert hub["server"] == "https://registry-1.docker.io"  # where Docker Hub's API answers
    assert hub["host"] == {"https://harbor.corp": {"capabilities": ["pull", "resolve"]}}


def test_an_upstream_with_a_path_is_refused_for_the_nodes() -> None:
    with pytest.raises(SettingsError, match=r"give ghcr\.io=MIRROR"):
        containerd_hosts({"ghcr.io/buoyantio": "registry.corp/faces"}, GATEWAY)


registry = st.from_regex(REGISTRY_PREFIX, fullmatch=True).map(lambda text: text.split("/")[0])
mirror = st.from_regex(REGISTRY_PREFIX, fullmatch=True)


@given(upstream=registry, to=mirror)
def test_any_valid_mirror_pair_gives_exactly_one_server_and_one_host(
    upstream: str, to: str
) -> None:
    """Whatever a user may write (the validated form), the file holds one server and one
    host and nothing else: no value can add a table or a key."""
    files = containerd_hosts({upstream: to}, GATEWAY)
    parsed = tomllib.loads(files[upstream])
    assert set(parsed) == {"server", "host"}
    (endpoint, table), *more = parsed["host"].items()
    assert more == []
    assert endpoint == mirror_endpoint(to, GATEWAY)
    assert set(table) <= {"capabilities", "override_path"}


def test_kind_mounts_the_hosts_folder_as_the_nodes_certs_d(tmp_path: Path) -> None:
    config = yaml.safe_load(kind_config(registry_hosts=tmp_path))
    patch = tomllib.loads(config["containerdConfigPatches"][0])
    assert patch["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == HOSTS_DIR
    (node,) = config["nodes"]
    assert node["extraMounts"] == [
        {"hostPath": str(tmp_path), "containerPath": HOSTS_DIR, "readOnly": True}
    ]
    plain = yaml.safe_load(kind_config())
    assert "containerdConfigPatches" not in plain
    assert "extraMounts" not in plain["nodes"][0]


def test_the_walkthroughs_own_pulls_go_through_the_mirrors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kind_online_config: the node image (prepare_kind), the DNS forwarder and the Faces
    chart are pulled from the mirrors, and a chart on this machine's mirror over HTTP."""
    mirrors = {"ghcr.io": "127.0.0.1:5000/ghcr", "docker.io": "127.0.0.1:5000/hub"}
    settings = Settings(mirrors=mirrors)
    prepared: list[Settings] = []

    def prepare_kind(*, folder: Path, online: bool, settings: Settings, progress: object) -> object:
        assert online
        prepared.append(settings)
        return KindProvider(kind=Path("kind"), node_image="n", config=folder / "kind.yaml")

    def ensure_image(upstream: str, settings: Settings, progress: object) -> UsedImage:
        return UsedImage(upstream, settings.mirrored(upstream), "sha256:0")

    monkeypatch.setattr(walk_kind, "prepare_kind", prepare_kind)
    monkeypatch.setattr(walk_kind, "ensure_image", ensure_image)
    config = walk_kind.kind_online_config(E2EConfig(certs=tmp_path / "certs"), settings=settings)
    assert prepared == [settings]
    assert config.forwarder_image.startswith("127.0.0.1:5000/hub/coredns/coredns:")
    assert config.chart == "oci://127.0.0.1:5000/ghcr/buoyantio/faces-chart"
    assert config.chart_plain_http
    helm_install = faces_install(config)[2]
    assert config.chart in helm_install
    assert "--plain-http" in helm_install
    # behind mirrors the internet may be out of reach: linkerd check's version checks are
    # excepted (and said); with upstream's registries they must pass
    assert config.offline
    upstream = walk_kind.kind_online_config(
        E2EConfig(certs=tmp_path / "certs"), settings=Settings()
    )
    assert upstream.chart == FACES_CHART
    assert not upstream.chart_plain_http
    assert "--plain-http" not in faces_install(upstream)[2]
    assert not upstream.offline


def test_the_prerequisites_ask_for_the_mirrors_not_upstream() -> None:
    mirrors = {"cr.l5d.io": "registry.corp:5000/l5d", "ghcr.io": "registry.corp:5000/ghcr"}
    assert e2e_registries({}) == list(REGISTRIES)
    assert e2e_registries(mirrors) == ["registry.corp", "docker.io"]
    asked: list[str] = []

    def resolves(host: str) -> bool:
        asked.append(host)
        return host != "docker.io"

    missing = missing_prerequisites(
        proxy_is_standin=False,
        provider="kind",
        registries=e2e_registries(mirrors),
        which=lambda tool: f"/usr/bin/{tool}",
        resolves=resolves,
    )
    assert asked == ["registry.corp", "docker.io"]
    assert len(missing) == 1
    assert "docker.io do not resolve" in missing[0]
