"""`lab up`, `status` and `down`: the parts started in order and torn down whole on a
failure, their readiness, and `run` into a running lab.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.cluster import kube
from builder.cluster.apiserver import (
    APIServerError,
    admin_token,
    apiserver_command,
    connect_with_crds,
    etcd_command,
    prepare_apiserver,
    serving_tls,
)
from builder.cluster.registrar import Registrar
from builder.config.group import Group
from builder.core.net import proxy_readiness, wait_for_ok
from builder.core.progress import Progress
from builder.core.wait import NotYet, TimedOut, until
from builder.engine import docker_engine, lab_containers
from builder.lab.dns import add_dns_records, start_dns, write_dns
from builder.lab.layout import (
    APISERVER_PORT,
    LABEL,
    PODS,
    READY_TIMEOUT,
    SKIPPED_KINDS,
    SOURCES_FILE,
    Addresses,
    Lab,
    LabError,
    LabNotUp,
    LabSources,
    ensure_runtime_image,
    ipv6_subnet_beside,
    lab_container,
    pick_subnet,
)
from builder.lab.objects import endpoint_slices, linkerd_objects
from builder.lab.pods import start_pod


def lab_up(
    *,
    folder: Path,
    sources: LabSources,
    crds: tuple[str, ...],
    name: str = "meshexp-lab",
    progress: Progress | None = None,
    ipv6: bool = False,
) -> Lab:
    """Start the lab (with `ipv6`, on a dual-stack network); on any failure, remove what
    was started and raise."""
    progress = progress or Progress()
    sources = sources.check()
    lab_down(name=name, folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    used = lab_containers.used_subnets()
    subnet = pick_subnet(used)
    addresses = Addresses(subnet, ipv6_subnet_beside(subnet, used) if ipv6 else "")
    lab = Lab(name, folder.resolve(), name, addresses, folder.resolve() / "kubeconfig")
    try:
        with progress.phase("lab runtime image"):
            ensure_runtime_image()
        lab_containers.create_lab_network(
            name, addresses.subnet, addresses.dynamic, {LABEL: name}, addresses.ipv6_subnet
        )
        lab.save()
        sources.save(lab.folder)
        with progress.phase(f"Kubernetes API server on {addresses.apiserver}"):
            client = start_apiserver(lab, crds)
        with progress.phase("Linkerd's objects (linkerd install)"):
            objects = linkerd_objects(sources.linkerd, lab)
            kube.apply_documents(client, [o for o in objects if o["kind"] not in SKIPPED_KINDS])
        write_dns(lab, {})
        start_dns(lab)
        for pod in PODS:
            with progress.phase(f"{pod} controller behind a linkerd2-proxy"):
                start_pod(lab, client, sources, objects, pod)
        endpoint_slices(client, lab, objects)
        with progress.phase("control plane ready (proxies certified)"):
            wait_until_ready(lab)
    except BaseException:
        lab_down(name=name, folder=folder)
        raise
    return lab


def start_apiserver(lab: Lab, crds: tuple[str, ...]) -> kube.KubeClient:
    """etcd and kube-apiserver in one container; ready, with the CRDs; a client."""
    binary, etcd = prepare_apiserver()
    folder = lab.folder / "apiserver"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    token = admin_token(folder)
    etcd_url = "http://127.0.0.1:2379"
    ip = lab.addresses.apiserver
    etcd_line = " ".join(etcd_command(etcd, folder, etcd_url, 2380))
    api_line = " ".join(apiserver_command(binary, folder, etcd_url, "0.0.0.0", APISERVER_PORT, ip))
    script = f"{etcd_line} >{folder}/etcd.log 2>&1 & exec {api_line}"
    binds = {str(p): f"{p}:ro" for p in (binary, etcd)} | {str(folder): f"{folder}:rw"}
    lab_container(lab, "apiserver", ip, ["bash", "-c", script], binds=binds)
    url = f"https://{ip}:{APISERVER_PORT}"
    wait_readyz(url, token, lab)
    client, _ = connect_with_crds(url, token, folder, lab.kubeconfig, crds)
    return client


def wait_readyz(url: str, token: str, lab: Lab, timeout: float = 90) -> None:
    """The lab's API server answers /readyz, verified against its own certificate; its
    container's log when it does not."""
    try:
        context = serving_tls(lab.folder / "apiserver", timeout)
        last = wait_for_ok(
            f"{url}/readyz",
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            context=context,
            interval=0.5,
        )
    except APIServerError:
        last = "no serving certificate"
    if last is not None:
        logs = docker_engine.container_logs(f"{lab.name}-apiserver")[-1500:]
        raise LabNotUp(f"lab: the API server at {url} was not ready in {timeout:.0f}s:\n{logs}")


def wait_until_ready(lab: Lab, timeout: float = READY_TIMEOUT) -> None:
    """Both control-plane proxies ready (certified by the identity controller), and half a
    second more for the controllers behind them (as before core.wait: a lab handed over
    at once let the first Services race the policy controller's start in one CI run)."""
    waiting = dict(lab.addresses.pods)

    def all_ready() -> bool | NotYet:
        for role, ip in list(waiting.items()):
            state = docker_engine.container_state(f"{lab.name}-{role}")
            if not state.get("Running"):
                logs = docker_engine.container_logs(f"{lab.name}-{role}")[-2000:]
                raise LabNotUp(f"lab: the {role} pod stopped:\n{logs}")
            if proxy_readiness(ip, timeout=2)[0]:
                del waiting[role]
        return True if not waiting else NotYet(f"the {next(iter(waiting))} pod's proxy")

    try:
        until(all_ready, timeout=timeout, interval=0.5)
    except TimedOut:
        role = next(iter(waiting))
        logs = docker_engine.container_logs(f"{lab.name}-{role}")[-2000:]
        raise LabNotUp(
            f"lab: the {role} pod's proxy was not ready in {timeout:.0f}s:\n{logs}"
        ) from None
    time.sleep(0.5)


def lab_certs(*, folder: Path, progress: Progress | None = None) -> Lab:
    """Take the certificates in the lab's certs/ (after `certs --rotate`) into its running
    control plane, as `linkerd upgrade` and a rollout restart do in a cluster: Linkerd's
    objects rendered again with them and applied (the trust roots ConfigMap, the issuer
    Secret), then the identity pod and the destination pod started again, one at a
    time, each ready before the next. Workloads restart onto the files by themselves.
    """
    progress = progress or Progress()
    lab = Lab.load(folder)
    sources = LabSources.load(folder)
    client = kube.connect(lab.kubeconfig)
    with progress.phase("Linkerd's objects with the new certificates (linkerd install)"):
        objects = linkerd_objects(sources.linkerd, lab)
        kube.apply_documents(client, [o for o in objects if o["kind"] not in SKIPPED_KINDS])
    for pod in PODS:
        with progress.phase(f"{pod} pod started again"):
            docker_engine.remove_container(f"{lab.name}-{pod}")
            start_pod(lab, client, sources, objects, pod)
            wait_until_ready(lab)
    return lab


@dataclass(frozen=True)
class ComponentState:
    name: str
    role: str
    status: str
    detail: str


def lab_status(*, folder: Path) -> tuple[Lab, list[ComponentState]]:
    lab = Lab.load(folder)
    states = []
    for found in lab_containers.labelled_containers(LABEL, lab.name):
        role = found["labels"].get(f"{LABEL}.role", "?")
        detail = ""
        if role in lab.addresses.pods:
            ready, _ = proxy_readiness(lab.addresses.pods[role], timeout=2)
            detail = f"proxy {'ready' if ready else 'not ready'} at {lab.addresses.pods[role]}"
        states.append(ComponentState(found["name"], role, found["status"], detail))
    return lab, sorted(states, key=lambda s: s.name)


def lab_down(*, name: str = "meshexp-lab", folder: Path | None = None) -> list[str]:
    """Remove every container and network of the lab, and its server's data."""
    # Workloads `run` put on the lab's network go with it.
    attached = [f"container {c}" for c in docker_engine.network_containers(name)]
    docker_engine.remove_network(name)
    removed = attached + lab_containers.remove_labelled(LABEL, name)
    if folder is not None:
        for state in ("apiserver", "pods", "dns", "lab.json", SOURCES_FILE, "kubeconfig"):
            path = folder / state
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def running_lab(**kwargs: Any) -> Iterator[Lab]:
    """A lab for the length of a block (tests, benchmarks), removed afterwards."""
    lab = lab_up(**kwargs)
    try:
        yield lab
    finally:
        lab_down(name=lab.name, folder=lab.folder)


def service_address(lab: Lab, name: str, namespace: str) -> str:
    """The ClusterIP the API server gave Service `name` (no kube-proxy routes it: a
    meshed client's proxy resolves it through the destination controller).
    """
    from lightkube.resources.core_v1 import Service

    client = kube.connect(lab.kubeconfig)
    found = client.get(Service, name, namespace=namespace)
    if found.spec is None or not found.spec.clusterIP:
        raise LabError(f"lab: Service {namespace}/{name} has no ClusterIP")
    return str(found.spec.clusterIP)


def run_in_lab(*, lab: Lab, **run: Any) -> Any:
    """`run` a workload into the lab: on its network, with its DNS and certificates,
    its ExternalWorkload and Service applied and Ready, and its Service's name in DNS.
    """
    from builder.cluster.run import run_workload

    run.setdefault("certs", lab.folder / "certs")
    result = run_workload(
        network=lab.network, dns=[lab.dns], kubeconfig=lab.kubeconfig, apply=True, **run
    )
    env = run.get("env") or {}
    workload = run["workload"]
    name = env.get("WORKLOAD_NAME", workload.name)
    namespace = env.get("WORKLOAD_NAMESPACE", workload.namespace)
    address = service_address(lab, name, namespace)
    add_dns_records(lab, {f"{name}.{namespace}.svc.cluster.local": address})
    return result


def register_in_lab(*, lab: Lab, group: Group, owner: str, say: Callable[[str], None]) -> Registrar:
    """A registrar (builder.cluster.registrar) for the lab: its API server, the
    addresses on its network, and each Service's name in its DNS."""

    def named(namespace: str, name: str, cluster_ip: str) -> None:
        add_dns_records(lab, {f"{name}.{namespace}.svc.cluster.local": cluster_ip})

    return Registrar(
        lab.kubeconfig,
        group.model_copy(update={"network": group.network or lab.network}),
        owner,
        say=say,
        on_service=named,
    )
