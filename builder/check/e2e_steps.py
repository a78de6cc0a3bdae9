"""The walk-through's steps as pure parts, tested without a cluster: the prerequisites, the
command line of each step, and the manifests and configuration files it applies.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TOOLS = {
    "k3d": "k3d (https://k3d.io: `curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/"
    "install.sh | bash`, or `go install github.com/k3d-io/k3d/v5@latest`)",
    "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "helm": "helm (https://helm.sh/docs/intro/install/)",
    "linkerd": "the linkerd CLI (`curl -sL https://run.linkerd.io/install-edge | sh`)",
}


REGISTRIES = ("cr.l5d.io", "ghcr.io", "docker.io")


FACES_CHART = "oci://ghcr.io/buoyantio/faces-chart"


FORWARDER_IMAGE = "coredns/coredns:1.11.3"


CURL_IMAGE = "curlimages/curl:8.10.1"


def missing_prerequisites(
    *,
    proxy_is_standin: bool,
    which: Callable[[str], str | None] = shutil.which,
    resolves: Callable[[str], bool] | None = None,
) -> list[str]:
    """Each missing prerequisite with how to get it; empty when e2e can run."""
    resolves = resolves or _resolves
    missing = [
        f"{tool} not on PATH: install {hint}" for tool, hint in TOOLS.items() if which(tool) is None
    ]
    if which("docker") is None:
        missing.append("docker CLI not on PATH (k3d drives the engine through it)")
    unreachable = [host for host in REGISTRIES if not resolves(host)]
    if unreachable:
        missing.append(
            f"registry access: {', '.join(unreachable)} do not resolve here (k3s, "
            "Linkerd, Faces and the proxy images are pulled from them)"
        )
    if proxy_is_standin:
        missing.append(
            "the real Linkerd proxy: the stand-in is refused for e2e; build with the "
            "default (online) proxy source or --proxy-file a linkerd2-proxy"
        )
    return missing


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class E2EConfig:
    cluster: str = "meshexp-e2e"
    network: str = "meshexp-e2e"
    linkerd_version: str = "2.18"
    faces_version: str = "2.0.0"
    certs: Path = Path("out/e2e/certs")
    keep: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.certs.parent / "kubeconfig"

    @property
    def context(self) -> str:
        return f"k3d-{self.cluster}"


def kubectl(config: E2EConfig, *args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", str(config.kubeconfig), *args]


def cluster_create(config: E2EConfig) -> list[str]:
    return [
        "k3d",
        "cluster",
        "create",
        config.cluster,
        "--network",
        config.network,
        "--k3s-arg",
        "--disable=traefik@server:0",
        "--k3s-arg",
        "--disable=metrics-server@server:0",
        "--wait",
        "--timeout",
        "180s",
    ]


def linkerd_install(config: E2EConfig) -> list[list[str]]:
    """`linkerd install` for the CRDs, then the control plane with our anchor and issuer."""
    base = ["linkerd", "--kubeconfig", str(config.kubeconfig), "install"]
    return [
        [*base, "--crds"],
        [
            *base,
            "--identity-trust-anchors-file",
            str(config.certs / "ca.crt"),
            "--identity-issuer-certificate-file",
            str(config.certs / "issuer.crt"),
            "--identity-issuer-key-file",
            str(config.certs / "issuer.key"),
        ],
    ]


def faces_install(config: E2EConfig) -> list[list[str]]:
    return [
        kubectl(config, "create", "namespace", "faces"),
        kubectl(config, "annotate", "namespace", "faces", "linkerd.io/inject=enabled"),
        [
            "helm",
            "--kubeconfig",
            str(config.kubeconfig),
            "install",
            "faces",
            FACES_CHART,
            "--version",
            config.faces_version,
            "-n",
            "faces",
            "--wait",
            "--set",
            "face.errorFraction=0",
            "--set",
            "backend.errorFraction=0",
        ],
        kubectl(config, "-n", "faces", "delete", "deployment", "smiley", "color"),
    ]


def dns_nodeport(config: E2EConfig) -> list[str]:
    return kubectl(
        config,
        "-n",
        "kube-system",
        "patch",
        "service",
        "kube-dns",
        "-p",
        json.dumps({"spec": {"type": "NodePort"}}),
    )


def corefile(node_ip: str, dns_port: int) -> str:
    """The DNS forwarder's config: cluster names to kube-dns, nothing else answered."""
    return (
        f"cluster.local:53 {{\n    forward . {node_ip}:{dns_port}\n    log\n}}\n"
        ". {\n    forward . /etc/resolv.conf\n}\n"
    )


def canary_route(weight_external: int = 50, port: int = 80) -> dict[str, object]:
    """An HTTPRoute (Linkerd's) splitting smiley's Service between smiley and smiley2."""
    return {
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "HTTPRoute",
        "metadata": {"name": "smiley-canary", "namespace": "faces"},
        "spec": {
            "parentRefs": [{"name": "smiley", "kind": "Service", "group": "core", "port": port}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "smiley", "port": port, "weight": weight_external},
                        {"name": "smiley2", "port": port, "weight": 100 - weight_external},
                    ]
                }
            ],
        },
    }
