"""The engine calls only the mesh lab makes: a network with a fixed subnet, long-running
containers at fixed addresses on it, and everything carrying one label, listed and removed.

Through docker-py, like builder.engine.docker_engine, whose client it shares.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from builder.core.errors import BuildError
from builder.engine.docker_engine import client, remove_container


def create_lab_network(
    name: str, subnet: str, dynamic: str, labels: dict[str, str], ipv6_subnet: str = ""
) -> None:
    """A bridge network with a fixed subnet; the engine hands out only `dynamic`
    (a part of it), leaving the rest for addresses the caller assigns. With
    `ipv6_subnet`, dual-stack: the engine hands out IPv6 addresses from all of it.
    """
    pools = [docker.types.IPAMPool(subnet=subnet, iprange=dynamic)]
    if ipv6_subnet:
        pools.append(docker.types.IPAMPool(subnet=ipv6_subnet))
    client().networks.create(
        name,
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=pools),
        labels=labels,
        enable_ipv6=bool(ipv6_subnet),
    )


def used_subnets() -> list[str]:
    """Every subnet the engine's networks hold."""
    subnets = []
    for network in client().networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                subnets.append(str(config["Subnet"]))
    return subnets


@dataclass(frozen=True)
class LabContainer:
    """A long-running container at a fixed address on a lab network."""

    name: str
    image: str
    network: str
    ip: str
    command: list[str]
    labels: dict[str, str]
    binds: dict[str, str] = field(default_factory=dict)  # host path -> "target:ro|rw"
    env: dict[str, str] = field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)


def start_lab_container(spec: LabContainer) -> str:
    """Create and start `spec` (replacing a container of that name); its id."""
    api = client().api
    remove_container(spec.name)
    binds = [f"{source}:{target}" for source, target in spec.binds.items()]
    host_config = api.create_host_config(
        network_mode=spec.network,
        binds=binds,
        cap_add=list(spec.cap_add),
        dns=list(spec.dns) or None,
        tmpfs=spec.tmpfs or None,
        # Like a kubelet's: a part that exits (or is killed) is started again, until
        # `lab down` removes it or someone stops it on purpose.
        restart_policy={"Name": "unless-stopped"},
    )
    networking = api.create_networking_config(
        {spec.network: api.create_endpoint_config(ipv4_address=spec.ip)}
    )
    try:
        created = api.create_container(
            spec.image,
            command=spec.command,
            name=spec.name,
            hostname=spec.name,
            environment=spec.env,
            labels=spec.labels,
            host_config=host_config,
            networking_config=networking,
        )
        api.start(created["Id"])
    except docker.errors.APIError as exc:
        raise BuildError(
            f"could not start {spec.name} from {spec.image}: {exc.explanation}"
        ) from None
    return str(created["Id"])


def labelled_containers(label: str, value: str) -> list[dict[str, Any]]:
    """Name, state and labels of every container carrying label=value."""
    found = client().containers.list(all=True, filters={"label": f"{label}={value}"})
    return [{"name": c.name, "status": c.status, "labels": c.labels} for c in found]


def remove_labelled(label: str, value: str) -> list[str]:
    """Remove every container, then every network, carrying label=value; their names."""
    removed = []
    for container in client().containers.list(all=True, filters={"label": f"{label}={value}"}):
        container.remove(force=True)
        removed.append(f"container {container.name}")
    for network in client().networks.list(filters={"label": f"{label}={value}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
            removed.append(f"network {network.name}")
    return removed


def signal_container(name: str, signal: str) -> None:
    client().containers.get(name).kill(signal=signal)
