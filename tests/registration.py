"""For the registration's tests and benchmark: what the engine's `docker inspect` shows of
a container of one of our images (for tests that need no engine), and a probe made to
fail while the workload lives."""

from __future__ import annotations

import hashlib
from typing import Any

from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.engine import docker_engine


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


def refuse_probe(name: str, add: bool) -> None:
    """Refuse (or allow again) the probe's connection: the workload's UID to its own port
    on loopback. The proxy (another UID) still reaches the workload."""
    attrs = docker_engine.inspect_if_exists(name)
    labels = attrs["Config"]["Labels"]
    rule = [
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        "8000",
        "-m",
        "owner",
        "--uid-owner",
        labels["io.meshexp.workload-uid"],
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]
    binary = f"iptables-{labels['io.meshexp.iptables-mode']}"
    code, out = docker_engine.exec_in(name, [binary, "-I" if add else "-D", *rule])
    if code != 0:
        raise AssertionError(f"{binary} in {name}: {out.strip()}")
