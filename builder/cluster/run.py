"""`meshexp-build run` / `stop`: start a built image for local iteration, as the walk-through does.

Replaces the walk-through's long `docker run` line and hand-edited manifest:
start with the right capabilities, mounts, environment and routes, wait until
the proxy is ready, then write the ExternalWorkload, Service and status patch
for the container's addresses (both families on a dual-stack network, 2.17+).
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from builder.cluster import kube
from builder.cluster.manifests import (
    Manifests,
    build_manifests,
    left_out_line,
    listed_addresses,
    not_ready_condition,
    status_patch_args,
)
from builder.cluster.registrar import RUN_LABEL
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.config.validation import check_container_name
from builder.core import image_contract
from builder.core.errors import CheckError, MeshexpError
from builder.core.wait import NotYet, TimedOut, until
from builder.engine import docker_engine


@dataclass(frozen=True)
class Route:
    cidr: str
    via: str


@dataclass(frozen=True)
class RunResult:
    name: str
    image: str
    network: str
    ip: str
    ready_seconds: float
    manifest: Path
    status_patch: Path | None
    applied: bool
    apply_commands: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()  # the ExternalWorkload's workloadIPs (IPv4 first)
    note: str = ""  # an address the release could not list, and why


def parse_route(text: str) -> Route:
    """`10.42.0.0/16:172.18.0.2` -> Route, both parts checked."""
    cidr, sep, via = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        network = ipaddress.ip_network(cidr, strict=False)
        gateway = ipaddress.ip_address(via)
    except ValueError:
        raise MeshexpError(
            f"--route {text!r}: expected CIDR:VIA, e.g. 10.42.0.0/16:172.18.0.2"
        ) from None
    return Route(str(network), str(gateway))


def container_name(workload: str) -> str:
    return f"meshexp-{workload}"


def wait_proxy_ready(name: str, timeout: float) -> float:
    """Seconds until the bootstrap says the proxy is ready.

    The bootstrap decides it inside the container by the one rule
    (image_contract.proxy_ready), under every default inbound policy and
    wherever the host cannot reach the container's address, so its word is
    waited for here.
    """
    start = time.monotonic()
    wait_for_log(name, image_contract.PROXY_READY_LINE, timeout)
    return time.monotonic() - start


def wait_for_log(name: str, line: str, timeout: float) -> None:
    """Wait until the container logs `line` (the bootstrap's 'workload started')."""

    def gone(state: dict[str, object]) -> CheckError:
        return CheckError(
            f"{name}: no {line!r} (exit code {state.get('ExitCode')}):\n"
            f"{docker_engine.container_logs(name)[-3000:]}"
        )

    def logged() -> bool | NotYet:
        if line in docker_engine.container_logs(name):
            return True
        state = docker_engine.container_state(name)
        if not state.get("Running"):
            raise gone(state)
        return NotYet(f"no {line!r} yet")

    try:
        until(logged, timeout=timeout)
    except TimedOut:
        raise gone(docker_engine.container_state(name)) from None


def run_workload(
    *,
    workload: Workload,
    settings: Settings,
    certs: Path,
    network: str,
    manifests_dir: Path,
    image: str | None = None,
    name: str | None = None,
    dns: list[str] | None = None,
    node_name: str | None = None,
    routes: list[Route] | None = None,
    env: dict[str, str] | None = None,
    kubeconfig: Path | None = None,
    apply: bool = False,
    timeout: float = 120,
    service_port: int | None = None,
    mounts: dict[str, str] | None = None,
) -> RunResult:
    """Start (or replace) a workload container, wait for ready, write its manifests.
    `mounts` binds more host folders (host path: container path)."""
    if apply and kubeconfig is None:
        raise MeshexpError("--apply needs --kubeconfig FILE")
    image = image or settings.image_reference(workload.name)
    name = check_container_name(name or container_name(workload.name), "--name")
    environment = {
        "WORKLOAD_NAME": workload.name,
        "WORKLOAD_NAMESPACE": workload.namespace,
        "NODE_NAME": node_name or socket.gethostname(),
        **(env or {}),
    }
    found = start_container(
        image, name, network, environment, certs, dns, routes or [], apply, mounts or {}
    )
    ips, left_out = listed_addresses(found, settings.facts.max_workload_ips)
    ready = wait_proxy_ready(name, timeout)
    wait_for_log(name, image_contract.WORKLOAD_STARTED_LINE, timeout)
    manifests = build_manifests(
        workload=workload,
        settings=settings,
        ips=ips,
        name=environment["WORKLOAD_NAME"],
        namespace=environment["WORKLOAD_NAMESPACE"],
        service_port=service_port,
    )
    manifest, patch_file, commands = write_manifests(manifests, manifests_dir, name)
    if apply and kubeconfig is not None:
        # Only now: the bootstrap said the proxy is ready and the workload listens.
        apply_to_cluster(kubeconfig, manifests)
    return RunResult(
        name,
        image,
        network,
        ips[0],
        ready,
        manifest,
        patch_file,
        apply,
        commands,
        tuple(ips),
        left_out_line(left_out, settings.linkerd_version) if left_out else "",
    )


def start_container(
    image: str,
    name: str,
    network: str,
    environment: dict[str, str],
    certs: Path,
    dns: list[str] | None,
    routes: list[Route],
    apply: bool,
    mounts: dict[str, str],
) -> tuple[str, ...]:
    """The container started (replacing one of its name) on `network`, its routes added;
    its addresses there, IPv4 first."""
    if not docker_engine.network_exists(network):
        docker_engine.create_network(network)
    docker_engine.remove_container(name)
    docker_engine.run_detached(
        image,
        name=name,
        network=network,
        env=environment,
        volumes={str(certs.resolve()): "/opt/spire/certs", **mounts},
        cap_add=["NET_ADMIN", "NET_RAW"],
        dns=dns,
        # `register` leaves a container that `run --apply` registers to it.
        labels={RUN_LABEL: environment["WORKLOAD_NAME"]} if apply else None,
    )
    found = docker_engine.container_addresses(name, network)
    if not found:
        raise MeshexpError(f"{name} has no address on network {network}: see docker logs {name}")
    for route in routes:
        code, out = docker_engine.exec_in(
            name, ["ip", "route", "replace", route.cidr, "via", route.via]
        )
        if code != 0:
            raise MeshexpError(f"ip route {route.cidr} via {route.via} in {name}: {out.strip()}")
    return tuple(found)


def write_manifests(
    manifests: Manifests, folder: Path, name: str
) -> tuple[Path, Path | None, tuple[str, ...]]:
    """The manifests (and the status patch, 2.16+) written into `folder`; their paths,
    and the kubectl command lines that apply them."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / f"{name}.yaml"
    manifest.write_text(manifests.yaml())
    commands = [shlex.join(["kubectl", "apply", "-f", str(manifest)])]
    if manifests.status_patch is None:
        return manifest, None, tuple(commands)
    patch_file = folder / f"{name}-status-patch.json"
    patch_file.write_text(json.dumps(manifests.status_patch) + "\n")
    # Without the status step the ExternalWorkload is never Ready (2.16+).
    metadata = manifests.external_workload["metadata"]
    args = status_patch_args(metadata["name"], metadata["namespace"], patch_file=patch_file)
    return manifest, patch_file, (*commands, shlex.join(["kubectl", *args]))


def apply_to_cluster(kubeconfig: Path, manifests: Manifests) -> list[kube.ObjectRef]:
    """Create or update the ExternalWorkload and Service (server-side apply, so a second
    run changes nothing), then mark the workload Ready (status subresource, 2.16+).
    """
    client = kube.connect(kubeconfig)
    kube.ensure_namespace(client, manifests.external_workload["metadata"]["namespace"])
    documents = [
        json.loads(json.dumps(doc)) for doc in (manifests.external_workload, manifests.service)
    ]
    applied = kube.apply_documents(client, documents)
    if manifests.status_patch is not None:
        meta = manifests.external_workload["metadata"]
        kube.set_status(client, meta["name"], meta["namespace"], manifests.status_patch["status"])
    return applied


def manifest_refs(manifest: Path) -> list[kube.ObjectRef]:
    """The objects a manifest file that `run` wrote describes."""
    refs = []
    for doc in yaml.safe_load_all(manifest.read_text()):
        if isinstance(doc, dict) and doc.get("kind") in kube.KINDS:
            meta = doc.get("metadata") or {}
            refs.append(kube.ObjectRef(doc["kind"], meta["name"], meta["namespace"]))
    return refs


def stop_workload(
    *, name: str, manifests_dir: Path, kubeconfig: Path | None = None
) -> tuple[bool, list[Path]]:
    """Remove the container; with `kubeconfig`, first mark its ExternalWorkload not ready,
    then delete what `run` applied (only objects that carry our managed-by label).
    Returns whether a container was removed and the manifest files that belong to it.
    """
    check_container_name(name, "--name")
    files = [path for path in (manifests_dir / f"{name}.yaml",) if path.is_file()]
    if kubeconfig is not None:
        client = kube.connect(kubeconfig)
        for manifest in files:
            refs = manifest_refs(manifest)
            for ref in refs:
                if ref.kind == "ExternalWorkload" and kube.ready_condition(
                    ref.name, ref.namespace, client
                ):
                    kube.set_status(
                        client, ref.name, ref.namespace, not_ready_condition("ContainerStopped")
                    )
            kube.delete_managed(client, refs)
    removed = docker_engine.remove_container(name)
    return removed, files
