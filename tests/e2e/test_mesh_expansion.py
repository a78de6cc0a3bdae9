"""The mesh-expansion walk-through against a throwaway k3d cluster (marker e2e).

Runs where k3d, kubectl, helm, the linkerd CLI and registry access exist, with
the real Linkerd proxy. Elsewhere it skips, naming every missing prerequisite.
MESHEXP_E2E_KEEP=1 keeps the cluster for debugging.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.check.e2e import run_e2e
from builder.check.e2e_steps import E2EConfig, missing_prerequisites
from builder.config.settings import load_settings

pytestmark = pytest.mark.e2e


def e2e_settings():
    proxy = os.environ.get("MESHEXP_E2E_PROXY_FILE")
    return load_settings(
        None,
        {
            "linkerd_version": os.environ.get("MESHEXP_E2E_LINKERD", "2.18"),
            "proxy_file": Path(proxy) if proxy else None,
        },
    )


def test_external_smiley_and_color_serve_the_in_cluster_face(tmp_path: Path) -> None:
    settings = e2e_settings()
    source = settings.proxy()
    standin = "standin" in str(getattr(source, "path", ""))
    missing = missing_prerequisites(proxy_is_standin=standin)
    if missing:
        pytest.skip("e2e needs: " + "; ".join(missing))
    config = E2EConfig(
        certs=tmp_path / "certs",
        keep=os.environ.get("MESHEXP_E2E_KEEP") == "1",
        linkerd_version=settings.linkerd_version,
    )
    result = run_e2e(config=config, settings=settings)
    assert result.answers > 0
    assert result.smileys_external > 0.9
    assert result.tls_from_face > 0
    assert 0.2 <= result.canary_share_external <= 0.8
