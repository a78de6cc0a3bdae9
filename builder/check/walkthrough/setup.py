"""The walk-through's set-up steps, each a function of the Walk: the cluster and its
images, Linkerd, Faces, the DNS forwarder, and the external workloads (built here with the
real proxy, started on the cluster's network, registered, kept Ready). Each step owes its
removal to the Walk's Cleanup before it makes anything.
"""

from __future__ import annotations

import functools
import threading
import time

from builder.build.image import build_workload_image
from builder.check.walkthrough.observe import images_run
from builder.check.walkthrough.steps import (
    CommandFailed,
    E2EConfig,
    Runner,
    check_failures,
    cluster_create,
    corefile,
    dns_nodeport,
    excepted_checks,
    faces_install,
    kubectl,
    linkerd_install,
)
from builder.check.walkthrough.walk import CLUSTER_READY, LINKERD_AVAILABLE, Walk, one_line
from builder.cluster import kube
from builder.cluster.keeper import StatusKeeper, targets_from_manifests
from builder.cluster.kind import configure_registry_hosts
from builder.cluster.providers import KindProvider
from builder.cluster.run import Route, run_workload
from builder.config.catalog import find_workload
from builder.core import wait
from builder.core.errors import CheckError
from builder.engine import docker_engine


def create_cluster(walk: Walk) -> None:
    """The cluster on its network, its node Ready; its removal (the cluster, then the
    network) is owed from before the first command, so a half-made one goes too."""
    config, provider = walk.config, walk.config.provider
    config.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    walk.cleanup.networks.append(config.network)
    walk.cleanup.push(
        f"remove the network {config.network}",
        functools.partial(docker_engine.remove_network, config.network),
    )
    walk.cleanup.containers.extend(provider.node_containers(config.cluster))
    walk.cleanup.push(
        f"delete the {provider.name} cluster", lambda: walk.run(provider.delete(config.cluster))
    )
    started = time.monotonic()
    for command in cluster_create(config):
        walk.run(command)
    if isinstance(provider, KindProvider):
        configure_registry_hosts(provider, config.network)
    walk.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=180s")
    walk.timings[CLUSTER_READY] = time.monotonic() - started


def load_images(walk: Walk) -> None:
    """Offline: the cluster is given every image it will run."""
    for image in walk.config.load_images:
        walk.run(walk.config.provider.load_image(walk.config.cluster, image))


def install_linkerd(walk: Walk) -> None:
    """`linkerd install | kubectl apply -f -` (CRDs, then the control plane with our anchor
    and issuer), then `linkerd check`."""
    from builder.cluster.certs import create_certs

    config = walk.config
    wait.until(lambda: _default_account(walk), timeout=120, interval=2.0)
    if not (config.certs / "issuer.key").exists():
        create_certs(folder=config.certs)
    installing = time.monotonic()
    for command in linkerd_install(config):
        walk.kubectl("apply", "-f", "-", stdin=walk.run(command))
    excepted = linkerd_check(config, walk.run)
    if excepted:
        walk.said.append(
            "linkerd check passed but for its version checks (no internet): " + "; ".join(excepted)
        )
    walk.timings[LINKERD_AVAILABLE] = time.monotonic() - installing


def _default_account(walk: Walk) -> bool | wait.NotYet:
    """Whether the API serves the default namespace's service account (the control
    plane's controllers have started), or NotYet with why."""
    try:
        walk.get("ServiceAccount", "default", "default")
    except kube.KubeError as exc:
        return wait.NotYet(one_line(exc, 300))
    return True


def linkerd_check(config: E2EConfig, run: Runner) -> list[str]:
    """`linkerd check` once the control plane's deployments are Available; offline, its
    version checks (which ask the internet for the latest release) are excepted, and that
    is said."""
    run(
        kubectl(
            config,
            "-n",
            "linkerd",
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            "--timeout=300s",
        )
    )
    command = [config.tools.linkerd, "--kubeconfig", str(config.kubeconfig), "check"]
    try:
        report = run([*command, "-o", "json"])
    except CommandFailed as exc:
        report = exc.output
    failures = check_failures(report, config.offline)
    if failures:
        raise CheckError("e2e: linkerd check failed: " + "; ".join(failures))
    return excepted_checks(report, config.offline)


def install_faces(walk: Walk) -> None:
    """The Faces chart (smiley and color left to the external workloads), kube-dns on a
    NodePort for the external workloads' forwarder; what the next steps need to know, and
    the images Linkerd's and Faces' pods run (with what the node pulled them as)."""
    config = walk.config
    for command in faces_install(config):
        walk.run(command)
    walk.run(dns_nodeport(config))
    node = kube.nodes(walk.api)[0]
    dns = walk.get("Service", "kube-dns", "kube-system")
    gui = walk.get("Service", "faces-gui", "faces")
    walk.found = {
        "node_ip": next(
            a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"
        ),
        "pod_cidr": node["spec"]["podCIDR"],
        "dns_port": str(
            next(p["nodePort"] for p in dns["spec"]["ports"] if p["protocol"] == "UDP")
        ),
        "gui_port": str(gui["spec"]["ports"][0]["nodePort"]),
    }
    walk.cluster_images = images_run(
        [pod for ns in ("linkerd", "faces") for pod in kube.list_objects(walk.api, "Pod", {}, ns)]
    )


def start_forwarder(walk: Walk) -> None:
    """The seed's DNS forwarder on the cluster's network: cluster names to kube-dns."""
    config = walk.config
    folder = config.certs.parent / "dns"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Corefile").write_text(corefile(walk.found["node_ip"], int(walk.found["dns_port"])))
    name = f"{config.cluster}-dns"
    walk.cleanup.containers.append(name)
    walk.cleanup.push(f"remove {name}", functools.partial(docker_engine.remove_container, name))
    docker_engine.run_detached(
        config.forwarder_image,
        name=name,
        network=config.network,
        volumes={str(folder.resolve()): "/etc/coredns"},
        command=["-conf", "/etc/coredns/Corefile"],
    )
    walk.dns_ip = docker_engine.container_ip(name, config.network)


def build_images(walk: Walk) -> None:
    """The external workloads' images, built by meshexp-build with the real proxy."""
    for name in ("smiley", "color"):
        image = build_workload_image(workload=find_workload(name), settings=walk.settings)
        if image.standin:
            raise CheckError("e2e refuses the proxy stand-in: build with the real proxy")
        walk.images[name] = image.reference


def start_externals(walk: Walk) -> None:
    """smiley and color started on the cluster's network with the route to the pods,
    registered (ExternalWorkload and Service applied) and kept Ready by the keeper."""
    config = walk.config
    walk.externals_started = time.monotonic()
    for name in ("smiley", "color"):
        container = f"{config.cluster}-{name}"
        walk.cleanup.containers.append(container)
        walk.cleanup.push(
            f"remove {container}", functools.partial(docker_engine.remove_container, container)
        )
        run_workload(
            workload=find_workload(name),
            settings=walk.settings,
            certs=config.certs,
            network=config.network,
            manifests_dir=config.certs.parent / "manifests",
            image=walk.images[name],
            name=container,
            dns=[walk.dns_ip],
            routes=[Route(walk.found["pod_cidr"], walk.found["node_ip"])],
            kubeconfig=config.kubeconfig,
            apply=True,
            service_port=80,
        )
    start_keeper(walk)


def start_keeper(walk: Walk) -> None:
    """The status keeper for the external workloads, in a thread until cleanup."""
    targets = targets_from_manifests(walk.config.certs.parent / "manifests")
    keeper = StatusKeeper(kubeconfig=walk.config.kubeconfig, targets=targets)
    stop = threading.Event()
    thread = threading.Thread(target=keeper.run, args=(stop.is_set,), daemon=True)
    thread.start()

    def stop_keeper() -> None:
        stop.set()
        thread.join(timeout=10)

    walk.cleanup.push("stop the status keeper", stop_keeper)
