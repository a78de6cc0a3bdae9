"""The mesh-expansion walk-through on a throwaway cluster with nodes (marker e2e).

On kind (MESHEXP_E2E_CLUSTER=kind, the default): everything is built here and offline,
the node image, kind, Helm and kubectl from the Go module proxy and Debian's packages,
Linkerd's images from its programs and Faces' from the real Faces programs and chart
(test equipment; always in CI). On k3d (MESHEXP_E2E_CLUSTER=k3d): k3d, kubectl, helm,
the linkerd CLI and registry access, as a user with them has; it skips elsewhere,
naming what is missing. The real Linkerd proxy either way. MESHEXP_E2E_KEEP=1 keeps
the cluster for debugging.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import docker
import pytest

from builder.check.browser import rgb
from builder.check.walkthrough.kind import kind_e2e_config
from builder.check.walkthrough.run import run_e2e
from builder.check.walkthrough.steps import E2EConfig, missing_prerequisites
from builder.config.settings import Settings, load_settings
from harness import equipment
from tests.conftest import need
from tests.integration.conftest import EngineState, clean_up_after

pytestmark = pytest.mark.e2e
FACES = equipment.REAL_FACES
BLUE = "#66CCEE"  # COLOR=blue, the chart's and the catalog's color (Paul Tol's palette)


def e2e_settings(cluster: str) -> Settings:
    """k3d: the default (online) sources, the real proxy from its release. kind: offline,
    with the real proxy and the real Faces smiley and color from the test equipment."""
    if cluster == "k3d":
        return load_settings(None, {}).with_(image_name="meshexp-e2e/{workload}").check()
    proxy = equipment.real_proxy()
    need(proxy is not None, f"the real linkerd2-proxy at {equipment.REAL_PROXY} (or PROXY_FILE)")
    real = {name: str(FACES / name) for name in ("smiley", "color") if (FACES / name).is_file()}
    return (
        load_settings(None, {"offline": True, "proxy_file": proxy, "binaries": real})
        .with_(
            image_name="meshexp-e2e/{workload}",
        )
        .check()
    )


def kind_config(base: E2EConfig) -> E2EConfig:
    inputs, missing = equipment.kind_e2e_inputs()
    need(not missing, "test equipment: " + ", ".join(missing))
    return kind_e2e_config(base, **inputs)


def test_external_smiley_and_color_serve_the_in_cluster_face(tmp_path: Path) -> None:
    cluster = os.environ.get("MESHEXP_E2E_CLUSTER", "kind")
    settings = e2e_settings(cluster)
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
    try:
        config = base if cluster == "k3d" else kind_config(base)
        result = run_e2e(config=config, settings=settings)
        after = EngineState.read(client)
    finally:
        left = clean_up_after(client, before)
    assert result.answers > 0
    for line in result.said:
        print(f"e2e: {line}")
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
