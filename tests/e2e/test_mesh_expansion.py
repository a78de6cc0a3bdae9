"""The mesh-expansion walk-through on a throwaway cluster with nodes (marker e2e).

On kind (MESHEXP_E2E_CLUSTER=kind, the default): the ONLINE walk-through as a site that
pulls through a registry mirror runs it (`check --e2e --cluster kind --mirror ...`).
The mirror is a local registry holding, under upstream's names and the test equipment's
Linkerd release, Linkerd's controller and proxy images made from the real programs, the
real Faces images and chart, SPIRE, the Debian base and the DNS forwarder (test
equipment: tests/upstream_images.py); nothing of it is in the engine or the cluster
beforehand, so every image the tool, the nodes and helm use comes through the mirror.
The node image is built here: this engine cannot start kindest/node privileged. kind,
Helm and kubectl come from the Go module proxy. (The offline walk-through, every image
loaded into the cluster, is test_fault_mid_run's.) On k3d (MESHEXP_E2E_CLUSTER=k3d):
k3d, kubectl, helm, the linkerd CLI and registry access, as a user with them has; it
skips elsewhere, naming what is missing. The real Linkerd proxy either way.
MESHEXP_E2E_KEEP=1 keeps the cluster for debugging.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import docker
import pytest

from builder.build.gobuild import HOST_ARCH, cached_go_binary
from builder.check.browser import rgb
from builder.check.walkthrough.kind import HELM, kind_online_config
from builder.check.walkthrough.run import run_e2e
from builder.check.walkthrough.steps import E2EConfig, missing_prerequisites
from builder.config.settings import PROXY_IMAGE, Settings, load_settings
from builder.oci.registry import LocalRegistry
from harness import equipment
from tests.conftest import need
from tests.integration.conftest import EngineState, clean_up_after
from tests.upstream_images import (
    CLI_RELEASE,
    CONTROLLER_IMAGE,
    MIRROR_PATHS,
    fill_walkthrough_mirror,
    walkthrough_images,
)

pytestmark = pytest.mark.e2e
BLUE = "#66CCEE"  # COLOR=blue, the chart's and the catalog's color (Paul Tol's palette)


def k3d_settings() -> Settings:
    """k3d: the default (online) sources, the real proxy from its release."""
    return load_settings(None, {}).with_(image_name="meshexp-e2e/{workload}").check()


def kind_through_a_mirror(
    base: E2EConfig, mirror: str, client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> tuple[E2EConfig, Settings, dict[str, str]]:
    """The online walk-through on kind, every upstream registry mirrored to `mirror`
    (filled here: what it holds and each image's digest there), helm and the linkerd CLI
    on PATH as a user has them; its config and settings, as `check --e2e` makes them."""
    inputs, missing = equipment.kind_e2e_inputs()
    need(not missing, "test equipment: " + ", ".join(missing))
    helm = cached_go_binary(HELM, HOST_ARCH)
    digests = fill_walkthrough_mirror(
        client, mirror, images=walkthrough_images(client, inputs), chart=inputs["chart"], helm=helm
    )
    tools = base.certs.parent / "bin"
    tools.mkdir(parents=True)
    (tools / "helm").symlink_to(helm)
    (tools / "linkerd").symlink_to(inputs["linkerd"])
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    mirrors = {upstream: f"{mirror}/{path}" for upstream, path in MIRROR_PATHS.items()}
    settings = (
        load_settings(None, {"linkerd_version": CLI_RELEASE, "mirrors": mirrors})
        .with_(image_name="meshexp-e2e/{workload}")
        .check()
    )
    return kind_online_config(base, settings=settings), settings, digests


def test_external_smiley_and_color_serve_the_in_cluster_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = os.environ.get("MESHEXP_E2E_CLUSTER", "kind")
    name = f"meshexp-e2e-{uuid.uuid4().hex[:6]}"
    base = E2EConfig(
        cluster=name,
        network=name,
        certs=tmp_path / "certs",
        keep=os.environ.get("MESHEXP_E2E_KEEP") == "1",
        # The GUI's screenshots, kept as CI artifacts.
        artifacts=Path(os.environ.get("MESHEXP_E2E_ARTIFACTS", "out/e2e-artifacts")).resolve(),
    )
    if cluster == "k3d":
        missing = missing_prerequisites(proxy_is_standin=False)
        need(not missing, "e2e on k3d needs: " + "; ".join(missing))
    client = docker.from_env(timeout=300)
    # Before any part is built: what the e2e makes (but the kept node image) goes again.
    before = EngineState.read(client)
    digests: dict[str, str] = {}
    # The mirror listens on every address: the nodes reach it at their network's gateway.
    with LocalRegistry(tmp_path / "mirror", listen="0.0.0.0") as mirror:
        try:
            if cluster == "k3d":
                config, settings = base, k3d_settings()
            else:
                config, settings, digests = kind_through_a_mirror(
                    base, mirror.address, client, monkeypatch
                )
            result = run_e2e(config=config, settings=settings)
            after = EngineState.read(client)
        finally:
            left = clean_up_after(client, before)
    assert result.answers > 0
    for line in result.said:
        print(f"e2e: {line}")
    if digests:
        # Linkerd's control plane and proxies, and Faces' pods, ran what the nodes pulled
        # through the mirror: the digest each image has there, under upstream's name.
        for upstream in (
            f"{CONTROLLER_IMAGE}:{CLI_RELEASE}",
            f"{PROXY_IMAGE}:{CLI_RELEASE}",
            "ghcr.io/buoyantio/faces-face:2.0.0",
            "ghcr.io/buoyantio/faces-gui:2.0.0",
        ):
            assert result.cluster_images[upstream].endswith("@" + digests[upstream]), upstream
        # the engine cannot start kindest/node privileged: it was not pulled, and said so
        assert any("node image is built here" in line for line in result.said)
    assert result.smileys_external > 0.9
    assert result.tls_from_face > 0
    assert 0.2 <= result.canary_share_external <= 0.8
    assert any(server_id.endswith("/smiley") for server_id in result.server_ids)
    assert result.endpoint_slices
    # the external smiley stopped: face falls back to Cursing, and Ready turns False
    assert result.fallback_share > 0.9
    assert result.ready_after_kill == "False"
    # registration by identity: a second smiley registered itself (no kubeconfig on its
    # side) and face's answers were its own, also while the service's pod was deleted
    # (an identity the group does not admit was refused); docker stop removed it at
    # once, not after the group's 60 s grace
    assert result.self_registered > 0.9
    assert result.through_restart > 0.9
    assert result.probe_fallback > 0.9  # its probe failed: Ready False, face fell back
    assert 0 < result.deregistered_after < 30
    # the GUI in Chromium: 16 grinning cells on the color workload's blue, then a mix
    assert [cell.smiley for cell in result.grid_before] == ["\U0001f603"] * 16
    assert {cell.background for cell in result.grid_before} == {rgb(BLUE)}
    assert {"\U0001f603", "\U0001f60d"} <= {cell.smiley for cell in result.grid_during}
    assert base.artifacts is not None
    assert (base.artifacts / "gui-before-canary.png").stat().st_size > 10_000
    # The walk-through removed its cluster, containers and network itself.
    assert after.containers == before.containers
    assert after.networks == before.networks
    assert left == []
