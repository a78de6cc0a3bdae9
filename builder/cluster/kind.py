"""A kind cluster: kind itself (adapted only where the engine cannot start privileged
containers, and saying so), its node image (built here offline, or kind's own kindest/node
online), and a cluster on a named Docker network that is gone again afterwards, also when
a step fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.build.gobuild import HOST_ARCH
from builder.build.gomodules import cached_kind, kind_node_image, kube_command
from builder.build.kind_node import build_node_image
from builder.build.upstream import ensure_image
from builder.cluster.providers import KindProvider, ProviderError, kind_config
from builder.cluster.registry_hosts import check_node_mirrors, containerd_hosts
from builder.config.settings import Settings
from builder.core import process
from builder.core.cache import file_sha256
from builder.core.progress import Progress
from builder.engine import docker_engine

ADAPTED_NOTE = (
    "this engine cannot start privileged containers ({why}); kind is built with its "
    "--privileged replaced by every capability the engine can give "
    "(builder/build/kind_adapt.py)"
)


@dataclass(frozen=True)
class KindCluster:
    name: str
    network: str
    kubeconfig: Path
    provider: KindProvider


UPSTREAM_REFUSED_NOTE = (
    "kind: {image} needs a privileged container, which this engine cannot start; the node "
    "image is built here instead (builder/build/kind_node.py)"
)


def prepare_kind(
    *,
    folder: Path,
    online: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
    on_line: Callable[[str], None] | None = None,
) -> KindProvider:
    """kind and its node image (each built or pulled once), and kind's cluster config.

    Offline, the node image is built here and kubectl is the node's own. Online, kind runs
    as published with its own node image (kindest/node, pulled as the settings' pull policy
    says, through their mirrors) and kubectl from PATH; where the engine cannot start a
    privileged container (asked first, so kindest/node is not pulled for nothing), the
    offline node image is used instead. Either way kind is adapted only
    where the engine refuses a privileged container. The settings' mirrors are the nodes'
    too (configure_registry_hosts, once the cluster is up).
    """
    settings = settings or Settings()
    progress = progress or Progress()
    line = on_line or progress.line
    notes = []
    save = functools.partial(_save_provider, folder, mirrors=tuple(settings.mirrors.items()))
    if online:
        upstream = kind_node_image()
        published = cached_kind(adapted=False, progress=progress)
        # Asked before the pull: an engine that cannot run kindest/node is not sent for it.
        if not privileged_check(published):
            used = ensure_image(upstream, settings, progress).used
            return save(
                kind=published,
                image=used,
                kubectl=Path("kubectl"),
                note="",
                own_cni=False,
            )
        notes.append(UPSTREAM_REFUSED_NOTE.format(image=upstream.split("@")[0]))
        line(notes[-1])
    node = build_node_image(progress=progress, on_line=line)
    refusal = docker_engine.privileged_refusal(node.reference)
    if refusal:
        notes.append("kind: " + ADAPTED_NOTE.format(why=refusal.strip().splitlines()[-1][:200]))
        line(notes[-1])
    return save(
        kind=cached_kind(adapted=bool(refusal), progress=progress),
        image=node.reference,
        kubectl=kube_command(node.kube, "kubectl"),
        note="; ".join(notes),
        own_cni=True,
    )


PROBE_REPOSITORY = "meshexp/kind-probe"


def privileged_check(kind: Path) -> str:
    """Why this engine cannot start a privileged container ("" when it can), asked with
    kind itself (a static program) alone in a scratch image, built once per kind."""
    reference = f"{PROBE_REPOSITORY}:{file_sha256(kind)[:16]}"
    if not docker_engine.image_exists(reference):
        with tempfile.TemporaryDirectory(prefix="meshexp-kind-probe-") as scratch:
            context = Path(scratch)
            shutil.copyfile(kind, context / "kind")
            (context / "kind").chmod(0o755)
            (context / "Dockerfile").write_text("FROM scratch\nCOPY kind /kind\n")
            docker_engine.build_image(context=context, tag=reference, platform=f"linux/{HOST_ARCH}")
    return docker_engine.privileged_refusal(reference, ("/kind", "version"))


def _save_provider(
    folder: Path,
    *,
    kind: Path,
    image: str,
    kubectl: Path,
    note: str,
    own_cni: bool,
    mirrors: tuple[tuple[str, str], ...],
) -> KindProvider:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "kind.yaml"
    cgroup_v1 = docker_engine.engine_info().cgroup_version == "1"
    hosts = None
    if mirrors:
        check_node_mirrors(dict(mirrors))  # before any cluster exists
        hosts = (folder / "containerd-hosts").resolve()
        hosts.mkdir(exist_ok=True)
    config.write_text(kind_config(own_cni=own_cni, cgroup_v1=cgroup_v1, registry_hosts=hosts))
    provider = KindProvider(
        kind=kind,
        node_image=image,
        config=config,
        kubectl=kubectl,
        note=note,
        mirrors=mirrors,
        registry_hosts=hosts,
    )
    saved = {
        "kind": str(kind),
        "node_image": image,
        "config": str(config),
        "kubectl": str(kubectl),
        "note": note,
    }
    (folder / PROVIDER_FILE).write_text(json.dumps(saved, indent=2) + "\n")
    return provider


PROVIDER_FILE = "provider.json"


def saved_provider(folder: Path) -> KindProvider:
    """The provider `prepare_kind` wrote into `folder` (for `cluster down`)."""
    try:
        saved = json.loads((folder / PROVIDER_FILE).read_text())
    except (OSError, ValueError):
        raise ProviderError(
            f"no kind cluster was prepared in {folder}: give the --dir `cluster up` used"
        ) from None
    return KindProvider(
        kind=Path(saved["kind"]),
        node_image=saved["node_image"],
        config=Path(saved["config"]),
        kubectl=Path(saved["kubectl"]),
        note=saved.get("note", ""),
    )


def configure_registry_hosts(provider: KindProvider, network: str) -> None:
    """The nodes' containerd told of the mirrors (each upstream registry's hosts.toml in
    the folder mounted at its certs.d), now that the network's gateway, where a mirror on
    this machine is reached, is known. Nothing to do without mirrors."""
    if provider.registry_hosts is None:
        return
    gateway = docker_engine.network_gateway(network)
    for upstream, text in containerd_hosts(dict(provider.mirrors), gateway).items():
        (provider.registry_hosts / upstream).mkdir(exist_ok=True)
        (provider.registry_hosts / upstream / "hosts.toml").write_text(text, encoding="ascii")


def run_command(command: list[str], what: str) -> str:
    return process.run(command, what=f"kind: {what}", error=ProviderError)


def leftovers(cluster: KindCluster) -> list[str]:
    """What of `cluster` still exists in the engine: node containers, its network."""
    found = [
        f"container {name}"
        for name in cluster.provider.node_containers(cluster.name)
        if docker_engine.inspect_if_exists(name)
    ]
    if docker_engine.network_exists(cluster.network):
        found.append(f"network {cluster.network}")
    return found


def delete_cluster(cluster: KindCluster) -> list[str]:
    """Delete the cluster and its network; what could not be removed (empty when clean)."""
    problems = []
    try:
        run_command(cluster.provider.delete(cluster.name), "kind delete cluster")
    except ProviderError as exc:
        problems.append(str(exc))
    if docker_engine.network_exists(cluster.network):
        others = docker_engine.network_containers(cluster.network)
        if others:
            problems.append(f"network {cluster.network} still has {', '.join(others)}")
        else:
            docker_engine.remove_network(cluster.network)
    return problems + leftovers(cluster)


def create_cluster(*, provider: KindProvider, name: str, network: str, folder: Path) -> KindCluster:
    """A running kind cluster on `network` (kind makes the network when it is missing);
    what a failed create made is deleted again before the error is raised."""
    cluster = KindCluster(name, network, folder / "kubeconfig", provider)
    if docker_engine.inspect_if_exists(provider.node_containers(name)[0]):
        raise ProviderError(
            f"a kind cluster {name} exists already: delete it (meshexp-build cluster down "
            f"--name {name}) or choose another name"
        )
    try:
        for command in provider.create(name, network, cluster.kubeconfig):
            run_command(command, "kind create cluster")
        configure_registry_hosts(provider, network)
    except ProviderError as exc:
        problems = delete_cluster(cluster)
        raise ProviderError(" ".join([exc.message, *problems])) from None
    return cluster


@contextlib.contextmanager
def kind_cluster(
    *, provider: KindProvider, name: str, network: str, folder: Path, keep: bool = False
) -> Iterator[KindCluster]:
    """A running kind cluster on `network`; deleted on the way out unless `keep`, and a
    cleanup that leaves something behind is an error."""
    cluster = create_cluster(provider=provider, name=name, network=network, folder=folder)
    try:
        yield cluster
    except BaseException as exc:
        problems = [] if keep else delete_cluster(cluster)
        if problems:
            exc.add_note("kind cleanup left things behind: " + "; ".join(problems))
        raise
    problems = [] if keep else delete_cluster(cluster)
    if problems:
        raise ProviderError("kind cleanup left things behind: " + "; ".join(problems))
