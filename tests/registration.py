"""What the engine's `docker inspect` shows of a container of one of our images, for the
registration's tests that need no engine (the lab test registers real containers)."""

from __future__ import annotations

import hashlib
from typing import Any

from builder.config.catalog import find_workload
from builder.config.settings import Settings


def inspected(
    name: str,
    ip: str,
    *,
    running: bool = True,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    network: str = "faces",
) -> dict[str, Any]:
    """A container of the smiley image, as `docker inspect` shows it; `env` is its `-e`."""
    smiley, settings = find_workload("smiley"), Settings()
    environment = {"WORKLOAD_NAME": "smiley", "WORKLOAD_NAMESPACE": "reg", **(env or {})}
    return {
        "Id": hashlib.sha256(name.encode()).hexdigest(),
        "Name": f"/{name}",
        "Config": {
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Labels": {
                "io.meshexp.workload": smiley.name,
                "io.meshexp.workload-namespace": smiley.namespace,
                "io.meshexp.ports": ",".join(port.label for port in smiley.ports),
                "io.meshexp.identity": settings.identity,
                "io.meshexp.trust-domain": settings.trust_domain,
                **(labels or {}),
            },
        },
        "State": {"Running": running},
        "NetworkSettings": {"Networks": {network: {"IPAddress": ip if running else ""}}},
    }
