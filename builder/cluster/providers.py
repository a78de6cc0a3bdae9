"""Throwaway clusters for the walk-through: kind or k3d, behind one small interface.

The walk-through's steps are the same on both; only creating a cluster on a
named Docker network, writing its kubeconfig, loading a local image into its
nodes and deleting it differ. Each provider gives those as command lines (pure,
unit-tested); builder.check.walkthrough.run runs them. k3d is what users with registry
access get by default; kind runs on machines without one, with a node image
built offline (builder.build.kind_node), and on engines that cannot start
privileged containers with kind adapted to that (builder.build.kind_adapt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from builder.cluster.registry_hosts import CONTAINERD_PATCH, HOSTS_DIR
from builder.core.errors import MeshexpError

PROVIDERS = ("k3d", "kind")
POD_SUBNET = "10.244.0.0/16"
CREATE_WAIT = "180s"


class ProviderError(MeshexpError):
    """A cluster provider cannot be used here."""


class ClusterProvider(Protocol):
    """What the walk-through needs of a throwaway cluster."""

    @property
    def name(self) -> str: ...

    @property
    def note(self) -> str:
        """What a run on this provider must say (an adaptation to this machine), or ""."""
        ...

    def create(self, cluster: str, network: str, kubeconfig: Path) -> list[list[str]]: ...

    def load_image(self, cluster: str, reference: str) -> list[str]: ...

    def delete(self, cluster: str) -> list[str]: ...

    def node_containers(self, cluster: str) -> list[str]: ...


@dataclass(frozen=True)
class K3dProvider:
    """k3d (k3s in Docker): needs registry access for its k3s and tools images."""

    k3d: str = "k3d"
    name: str = "k3d"
    note: str = ""

    def create(self, cluster: str, network: str, kubeconfig: Path) -> list[list[str]]:
        return [
            [
                self.k3d,
                "cluster",
                "create",
                cluster,
                "--network",
                network,
                "--k3s-arg",
                "--disable=traefik@server:0",
                "--k3s-arg",
                "--disable=metrics-server@server:0",
                "--kubeconfig-update-default=false",
                "--wait",
                "--timeout",
                CREATE_WAIT,
            ],
            [self.k3d, "kubeconfig", "write", cluster, "--output", str(kubeconfig)],
        ]

    def load_image(self, cluster: str, reference: str) -> list[str]:
        return [self.k3d, "image", "import", reference, "--cluster", cluster]

    def delete(self, cluster: str) -> list[str]:
        return [self.k3d, "cluster", "delete", cluster]

    def node_containers(self, cluster: str) -> list[str]:
        return [f"k3d-{cluster}-server-0"]


@dataclass(frozen=True)
class KindProvider:
    """kind with a given node image; `config` is the cluster's kind configuration file."""

    kind: Path
    node_image: str
    config: Path
    kubectl: Path = Path("kubectl")
    name: str = "kind"
    # Set when kind is adapted to an engine that cannot start privileged containers.
    note: str = ""
    # The registry mirrors the nodes pull through (UPSTREAM, MIRROR), and the folder that
    # holds their containerd hosts.toml files, mounted into the node (None: no mirrors).
    mirrors: tuple[tuple[str, str], ...] = ()
    registry_hosts: Path | None = None

    def create(self, cluster: str, network: str, kubeconfig: Path) -> list[list[str]]:
        # kind puts its nodes on the network this variable names (default "kind").
        return [
            [
                "env",
                f"KIND_EXPERIMENTAL_DOCKER_NETWORK={network}",
                str(self.kind),
                "create",
                "cluster",
                "--name",
                cluster,
                "--image",
                self.node_image,
                "--config",
                str(self.config),
                "--kubeconfig",
                str(kubeconfig),
                "--wait",
                CREATE_WAIT,
            ]
        ]

    def load_image(self, cluster: str, reference: str) -> list[str]:
        return [str(self.kind), "load", "docker-image", reference, "--name", cluster]

    def delete(self, cluster: str) -> list[str]:
        return [str(self.kind), "delete", "cluster", "--name", cluster]

    def node_containers(self, cluster: str) -> list[str]:
        return [f"{cluster}-control-plane"]


# From Kubernetes 1.35 the kubelet refuses a cgroup v1 host unless told not to.
CGROUP_V1_PATCH = "kind: KubeletConfiguration\nfailCgroupV1: false\n"


def kind_config(
    *, own_cni: bool = True, cgroup_v1: bool = False, registry_hosts: Path | None = None
) -> str:
    """One node and the pod subnet the walk-through routes to. With `own_cni` (the node
    image built here carries a bridge CNI) kind's kindnet is off; kindest/node keeps it.
    On a cgroup v1 host the kubelet is told to run there anyway. With `registry_hosts`
    that folder is the node's containerd certs.d (the mirrors' hosts.toml files)."""
    networking: dict[str, object] = {"podSubnet": POD_SUBNET}
    if own_cni:
        networking = {"disableDefaultCNI": True, **networking}
    node: dict[str, object] = {"role": "control-plane"}
    config: dict[str, object] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": networking,
        "nodes": [node],
    }
    if cgroup_v1:
        config["kubeadmConfigPatches"] = [CGROUP_V1_PATCH]
    if registry_hosts is not None:
        config["containerdConfigPatches"] = [CONTAINERD_PATCH]
        node["extraMounts"] = [
            {"hostPath": str(registry_hosts), "containerPath": HOSTS_DIR, "readOnly": True}
        ]
    return yaml.safe_dump(config, sort_keys=False)


def check_provider_name(name: str) -> str:
    if name not in PROVIDERS:
        raise ProviderError(
            f"cluster provider {name!r} is not known: use one of {', '.join(PROVIDERS)}"
        )
    return name
