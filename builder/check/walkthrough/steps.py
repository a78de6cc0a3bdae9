"""The walk-through's steps as pure parts, tested without a cluster: the prerequisites, the
command line of each step, and the manifests and configuration files it applies; and the
Runner that runs a command line (a test gives one that records them).

The walk-through runs `kubectl`, `helm` and `linkerd` only where replaying its own
command lines is the point (the cluster's create, `linkerd install | kubectl apply`,
`linkerd check`, the Faces chart's install, the namespace's annotation, the waits for
rollouts, the canary's HTTPRoute as the walk-through's YAML). What the steps read of
the cluster (nodes, Services, EndpointSlices, the ExternalWorkload's Ready) goes
through builder.cluster.kube (`Walk.get`, `Walk.api`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from builder.cluster.providers import ClusterProvider, K3dProvider
from builder.config.mirrors import mirrored
from builder.core import process
from builder.core.errors import CheckError

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


# The Faces images, as the chart names them (offline: made here under the same names).
FACES_IMAGES = "ghcr.io/buoyantio/faces"


OFFLINE_KIND = (
    "or run it offline on kind, every image made here: check --e2e --cluster kind "
    "--linkerd-programs DIR --faces-programs DIR --proxy-file FILE"
)


def e2e_registries(mirrors: Mapping[str, str]) -> list[str]:
    """The hosts the online walk-through pulls from: upstream's registries, or the mirror
    that covers each (a host name, without its port)."""
    hosts = [mirrored(f"{host}/x", tuple(mirrors.items())).split("/")[0] for host in REGISTRIES]
    return list(dict.fromkeys(host.rsplit(":", 1)[0] for host in hosts))


def missing_prerequisites(
    *,
    proxy_is_standin: bool,
    provider: str = "k3d",
    registries: Sequence[str] = REGISTRIES,
    which: Callable[[str], str | None] = shutil.which,
    resolves: Callable[[str], bool] | None = None,
) -> list[str]:
    """Each missing prerequisite of the online walk-through on `provider` (k3d or kind)
    with how to get it; empty when it can run. kind itself is built here from the Go module
    proxy, so only k3d is a tool to install. `registries`: where its images come from
    (upstream's, or their mirrors)."""
    resolves = resolves or _resolves
    tools = {tool: hint for tool, hint in TOOLS.items() if tool != "k3d" or provider == "k3d"}
    missing = [
        f"{tool} not on PATH: install {hint}" for tool, hint in tools.items() if which(tool) is None
    ]
    if which("docker") is None:
        missing.append(f"docker CLI not on PATH ({provider} drives the engine through it)")
    unreachable = [host for host in registries if not resolves(host)]
    if unreachable:
        node = "k3s" if provider == "k3d" else "kindest/node"
        missing.append(
            f"registry access: {', '.join(unreachable)} do not resolve here ({node}, "
            "Linkerd, Faces and the proxy images are pulled from them)"
            + ("; " + OFFLINE_KIND if provider == "kind" else "")
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
class E2ETools:
    """The command-line tools the walk-through runs (on PATH, or files we built)."""

    kubectl: str = "kubectl"
    helm: str = "helm"
    linkerd: str = "linkerd"


@dataclass(frozen=True)
class E2EConfig:
    cluster: str = "meshexp-e2e"
    network: str = "meshexp-e2e"
    linkerd_version: str = "2.18"
    faces_version: str = "2.0.0"
    certs: Path = Path("out/e2e/certs")
    keep: bool = False
    provider: ClusterProvider = field(default_factory=K3dProvider)
    tools: E2ETools = field(default_factory=E2ETools)
    # The Faces chart: upstream's OCI chart (or its mirror's), or a .tgz of it.
    chart: str = FACES_CHART
    # The chart's registry speaks plain HTTP (a mirror on this machine).
    chart_plain_http: bool = False
    # Local images the cluster is given before anything starts (offline: all of them).
    load_images: tuple[str, ...] = ()
    # `linkerd install --set` values (offline: the local images' names).
    linkerd_values: tuple[str, ...] = ()
    forwarder_image: str = FORWARDER_IMAGE
    # No internet: linkerd check's version checks cannot pass, and are excepted.
    offline: bool = False
    # Where the GUI's screenshots go (None: beside the certificates).
    artifacts: Path | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.certs.parent / "kubeconfig"


class Runner(Protocol):
    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str: ...


class CommandFailed(process.CommandFailed, CheckError):
    """A step's command exited non-zero (a check failure, exit 5); `output` is its stdout."""


def subprocess_runner(command: Sequence[str], stdin: str | None = None) -> str:
    """Run a command; its stdout, or CommandFailed with the end of what it said."""
    return process.run(command, stdin=stdin, error=CommandFailed)


def kubectl(config: E2EConfig, *args: str) -> list[str]:
    return [config.tools.kubectl, "--kubeconfig", str(config.kubeconfig), *args]


def cluster_create(config: E2EConfig) -> list[list[str]]:
    return config.provider.create(config.cluster, config.network, config.kubeconfig)


def linkerd_install(config: E2EConfig) -> list[list[str]]:
    """`linkerd install` for the CRDs (with the Gateway API's, which no cluster here has),
    then the control plane with our anchor and issuer."""
    base = [config.tools.linkerd, "--kubeconfig", str(config.kubeconfig), "install"]
    values = [part for value in config.linkerd_values for part in ("--set", value)]
    return [
        [*base, "--crds", "--set", "installGatewayAPI=true"],
        [
            *base,
            "--identity-trust-anchors-file",
            str(config.certs / "ca.crt"),
            "--identity-issuer-certificate-file",
            str(config.certs / "issuer.crt"),
            "--identity-issuer-key-file",
            str(config.certs / "issuer.key"),
            *values,
        ],
    ]


# linkerd check's checks that ask the internet for the latest release.
VERSION_CHECKS = ("linkerd-version", "control-plane-version", "linkerd-control-plane-proxy")


def check_failures(report: str, offline: bool) -> list[str]:
    """The failed checks in `linkerd check -o json` output; offline, those that compare
    versions with the latest release (which cannot be had) are excepted."""
    return _failed_checks(report, offline)[0]


def excepted_checks(report: str, offline: bool) -> list[str]:
    """The failed checks that `check_failures` excepted (offline: the version checks)."""
    return _failed_checks(report, offline)[1]


def _failed_checks(report: str, offline: bool) -> tuple[list[str], list[str]]:
    failed: list[str] = []
    excepted: list[str] = []
    for category in json.loads(report).get("categories", []):
        for check in category.get("checks", []):
            if check.get("result") != "error":
                continue
            about_versions = "up-to-date" in check.get("description", "") or (
                "latest version" in check.get("description", "")
            )
            line = f"{category.get('categoryName')}: {check.get('description')}"
            if offline and category.get("categoryName") in VERSION_CHECKS and about_versions:
                excepted.append(line)
                continue
            failed.append(f"{line}: {check.get('error', '')}")
    return failed, excepted


def helm(config: E2EConfig, *args: str) -> list[str]:
    return [config.tools.helm, "--kubeconfig", str(config.kubeconfig), *args]


def faces_install(config: E2EConfig) -> list[list[str]]:
    """Faces from its chart in an injected namespace (errors off, the GUI on a NodePort),
    then the in-cluster smiley and color removed: the external ones take their place."""
    version = ["--version", config.faces_version] if config.chart.startswith("oci://") else []
    if config.chart_plain_http:
        version.append("--plain-http")
    return [
        kubectl(config, "create", "namespace", "faces"),
        kubectl(config, "annotate", "namespace", "faces", "linkerd.io/inject=enabled"),
        helm(
            config,
            "install",
            "faces",
            config.chart,
            *version,
            "-n",
            "faces",
            "--wait",
            "--timeout",
            "5m",
            "--set",
            "face.errorFraction=0",
            "--set",
            "backend.errorFraction=0",
            "--set",
            "gui.serviceType=NodePort",
        ),
        kubectl(config, "-n", "faces", "delete", "deployment", "smiley", "color"),
    ]


SECOND_BACKENDS = (
    ("smiley2", "smiley", "SMILEY", "HeartEyes"),
    ("color2", "color", "COLOR", "green"),
)


def second_backends(version: str) -> list[dict[str, object]]:
    """smiley2 (HeartEyes) and color2 (green) in the cluster, from the Faces images, each
    with its Service: the canary's in-cluster side, as the walk-through starts them."""
    documents: list[dict[str, object]] = []
    for name, program, variable, value in SECOND_BACKENDS:
        labels = {"app": name}
        documents.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": "faces"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": program,
                                    "image": f"{FACES_IMAGES}-{program}:{version}",
                                    "env": [{"name": variable, "value": value}],
                                    "ports": [{"name": "http", "containerPort": 8000}],
                                }
                            ]
                        },
                    },
                },
            }
        )
        port_name = "grpc" if program == "color" else "http"
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "faces"},
                "spec": {
                    "selector": labels,
                    "ports": [{"name": port_name, "port": 80, "targetPort": "http"}],
                },
            }
        )
    return documents


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


def gui_requests_script(node_ip: str, port: int, count: int) -> str:
    """bash that asks face `count` times through the GUI's Service (as the GUI's page does:
    `/face/center/` and `/face/edge/` with a row and column), one answer body per line."""
    paths = ("/face/center/?row=1&col=1", "/face/edge/?row=0&col=3")
    requests = " ".join(shlex.quote(paths[n % 2]) for n in range(count))
    return (
        f"for path in {requests}; do "
        f"exec 3<>/dev/tcp/{node_ip}/{port} || {{ echo 'no connection'; continue; }}; "
        "printf 'GET %s HTTP/1.0\\r\\nHost: faces-gui\\r\\n\\r\\n' \"$path\" >&3; "
        "sed '1,/^\\r$/d' <&3; echo; exec 3<&-; done"
    )
