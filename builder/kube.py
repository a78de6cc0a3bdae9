"""The one module that runs kubectl: apply manifests and the Ready status patch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from builder.errors import MeshexpError
from builder.manifests import status_patch_args


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    found = shutil.which("kubectl")
    if not found:
        raise MeshexpError(
            "--apply needs kubectl on PATH (https://kubernetes.io/docs/tasks/tools/)"
        )
    result = subprocess.run(
        [found, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise MeshexpError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-800:]}")
    return result.stdout


def apply_external_workload(
    kubeconfig: Path,
    manifest_yaml: str,
    name: str,
    namespace: str,
    status_patch: dict[str, Any] | None,
) -> None:
    """Apply the ExternalWorkload and Service, then patch the Ready status (2.16+)."""
    kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest_yaml)
    if status_patch is not None:
        kubectl(kubeconfig, *status_patch_args(name, namespace, status_patch))
