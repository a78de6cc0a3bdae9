"""End to end against a throwaway k3d cluster running Linkerd (the walk-through, automated).

Everything here is built from pure parts that are tested without a cluster:
the prerequisite check, the command lines of each step, the manifests it
applies, the waits (polling with a limit) and the cleanup order (always run,
in reverse, even when a step fails). `run_e2e` drives them with a Runner that
executes the commands; the tests drive them with one that records them.
The proxy stand-in is refused: e2e runs only with the real Linkerd proxy.

The steps' command lines and manifests are builder.check.e2e_steps', the reading of
Faces answers builder.check.answers'; this module runs them.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from builder.build.image import build_workload_image
from builder.check.answers import GRINNING, face_trouble, smiley_share
from builder.check.e2e_steps import (
    CURL_IMAGE,
    FORWARDER_IMAGE,
    E2EConfig,
    canary_route,
    cluster_create,
    corefile,
    dns_nodeport,
    faces_install,
    kubectl,
    linkerd_install,
)
from builder.cluster.run import Route, run_workload
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.core.errors import CheckError, MeshexpError
from builder.engine import docker_engine


class Runner(Protocol):
    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str: ...


def subprocess_runner(command: Sequence[str], stdin: str | None = None) -> str:
    """Run a command; its stdout, or a CheckError with the end of its stderr."""
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CheckError(
            f"`{' '.join(command[:4])} ...` failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-1000:]}"
        )
    return result.stdout


def wait_until(
    what: str,
    probe: Callable[[], bool],
    limit: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 2.0,
) -> float:
    """Poll `probe` until it holds; seconds taken, or CheckError naming `what`."""
    start = clock()
    while True:
        try:
            if probe():
                return clock() - start
        except CheckError:
            pass
        if clock() - start >= limit:
            raise CheckError(f"e2e: {what} did not happen within {limit:.0f}s")
        sleep(interval)


@dataclass
class Cleanup:
    """Undo actions, run in reverse order, each attempted even if another fails."""

    actions: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], object]) -> None:
        self.actions.append((name, action))

    def run(self) -> list[str]:
        errors = []
        for name, action in reversed(self.actions):
            try:
                action()
            except (MeshexpError, OSError) as exc:
                errors.append(f"{name}: {exc}")
        self.actions.clear()
        return errors


def cluster_setup(config: E2EConfig, run: Runner, cleanup: Cleanup) -> dict[str, str]:
    """Steps 1-4: cluster, Linkerd, Faces, DNS; returns node IP, pod CIDR and DNS port."""
    from builder.cluster.certs import create_certs

    run(cluster_create(config))
    cleanup.push(
        "delete the k3d cluster", lambda: run(["k3d", "cluster", "delete", config.cluster])
    )
    config.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    config.kubeconfig.write_text(run(["k3d", "kubeconfig", "get", config.cluster]))
    run(kubectl(config, "wait", "--for=condition=Ready", "node", "--all", "--timeout=180s"))
    wait_until(
        "the default service account",
        lambda: bool(run(kubectl(config, "get", "serviceaccount", "default", "-o", "name"))),
        120,
    )
    if not (config.certs / "issuer.key").exists():
        create_certs(folder=config.certs)
    for command in linkerd_install(config):
        run(kubectl(config, "apply", "-f", "-"), stdin=run(command))
    run(["linkerd", "--kubeconfig", str(config.kubeconfig), "check", "--wait", "5m"])
    for command in faces_install(config):
        run(command)
    run(dns_nodeport(config))
    node = json.loads(run(kubectl(config, "get", "nodes", "-o", "json")))["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    service = json.loads(
        run(kubectl(config, "-n", "kube-system", "get", "service", "kube-dns", "-o", "json"))
    )
    dns_port = next(p["nodePort"] for p in service["spec"]["ports"] if p["protocol"] == "UDP")
    return {"node_ip": node_ip, "pod_cidr": node["spec"]["podCIDR"], "dns_port": str(dns_port)}


def apply_yaml(config: E2EConfig, run: Runner, document: dict[str, object]) -> None:
    run(kubectl(config, "apply", "-f", "-"), stdin=yaml.safe_dump(document))


SMILEY2_MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: smiley2, namespace: faces}
spec:
  replicas: 1
  selector: {matchLabels: {app: smiley2}}
  template:
    metadata: {labels: {app: smiley2}}
    spec:
      containers:
        - name: smiley
          image: ghcr.io/buoyantio/faces-smiley:%(version)s
          env: [{name: SMILEY, value: HeartEyes}]
          ports: [{name: http, containerPort: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: smiley2, namespace: faces}
spec:
  selector: {app: smiley2}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def curl_many(config: E2EConfig, run: Runner, url: str, count: int) -> list[str]:
    """`count` requests from a meshed curl pod inside the cluster; one answer per line."""
    script = f"for i in $(seq {count}); do curl -s --max-time 5 {url}; echo; done"
    out = run(
        kubectl(
            config,
            "-n",
            "faces",
            "run",
            f"e2e-curl-{int(time.time())}",
            "--rm",
            "-i",
            "--restart=Never",
            f"--image={CURL_IMAGE}",
            "--annotations=linkerd.io/inject=enabled",
            "--",
            "sh",
            "-c",
            script,
        )
    )
    return [line for line in out.splitlines() if line.startswith("{")]


def tls_inbound_from(metrics: str, client_id: str) -> int:
    """TLS inbound connections opened by `client_id`, from the real proxy's metrics."""
    total = 0
    for line in metrics.splitlines():
        if (
            line.startswith("tcp_open_total{")
            and 'direction="inbound"' in line
            and 'tls="true"' in line
            and f'client_id="{client_id}"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@dataclass(frozen=True)
class E2EResult:
    answers: int
    smileys_external: float
    tls_from_face: int
    canary_share_external: float
    kept: bool


def run_e2e(
    *, config: E2EConfig, settings: Settings, run: Runner = subprocess_runner, requests: int = 40
) -> E2EResult:
    """The whole walk-through; everything it creates is removed unless config.keep."""
    cleanup = Cleanup()
    try:
        found = cluster_setup(config, run, cleanup)
        forwarder_dir = config.certs.parent / "dns"
        forwarder_dir.mkdir(parents=True, exist_ok=True)
        (forwarder_dir / "Corefile").write_text(corefile(found["node_ip"], int(found["dns_port"])))
        docker_engine.run_detached(
            FORWARDER_IMAGE,
            name=f"{config.cluster}-dns",
            network=config.network,
            volumes={str(forwarder_dir.resolve()): "/etc/coredns"},
        )
        cleanup.push(
            "remove the DNS forwarder",
            lambda: docker_engine.remove_container(f"{config.cluster}-dns"),
        )
        dns_ip = docker_engine.container_ip(f"{config.cluster}-dns", config.network)
        for name in ("smiley", "color"):
            image = build_workload_image(workload=find_workload(name), settings=settings)
            if image.standin:
                raise CheckError("e2e refuses the proxy stand-in: build with the real proxy")
            container = f"{config.cluster}-{name}"
            run_workload(
                workload=find_workload(name),
                settings=settings,
                certs=config.certs,
                network=config.network,
                manifests_dir=config.certs.parent / "manifests",
                image=image.reference,
                name=container,
                dns=[dns_ip],
                routes=[Route(found["pod_cidr"], found["node_ip"])],
                kubeconfig=config.kubeconfig,
                apply=True,
                service_port=80,
            )
            cleanup.push(
                f"remove {container}", functools.partial(docker_engine.remove_container, container)
            )
        answers = curl_many(config, run, "http://face/", requests)
        if not answers:
            raise CheckError("e2e: face answered nothing")
        trouble = face_trouble(answers)
        if trouble:
            raise CheckError("e2e: " + "; ".join(sorted(set(trouble))[:5]))
        smileys = smiley_share(answers, GRINNING)
        smiley_ip = docker_engine.container_ip(f"{config.cluster}-smiley", config.network)
        metrics = docker_engine.exec_in(
            f"{config.cluster}-smiley",
            [
                "bash",
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/4191; "
                "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
            ],
        )[1]
        tls = tls_inbound_from(metrics, "face.faces.serviceaccount.identity.linkerd.cluster.local")
        if tls == 0:
            raise CheckError(f"e2e: no TLS inbound connection from face at {smiley_ip}")
        run(
            kubectl(config, "apply", "-f", "-"),
            stdin=SMILEY2_MANIFESTS % {"version": config.faces_version},
        )
        run(
            kubectl(
                config, "-n", "faces", "rollout", "status", "deployment/smiley2", "--timeout=180s"
            )
        )
        apply_yaml(config, run, canary_route(50))
        canary = smiley_share(curl_many(config, run, "http://smiley/", requests), GRINNING)
        if not 0.2 <= canary <= 0.8:
            raise CheckError(f"e2e: the 50/50 canary sent {canary:.0%} to the external smiley")
        return E2EResult(len(answers), smileys, tls, canary, config.keep)
    finally:
        if not config.keep:
            errors = cleanup.run()
            with_network = docker_engine.network_exists(config.network)
            if with_network:
                docker_engine.remove_network(config.network)
            if errors:
                raise CheckError("e2e cleanup left things behind: " + "; ".join(errors))
