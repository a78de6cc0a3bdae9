"""`meshexp-build register`: a container of one of our images joins the mesh by itself,
however it was started (the walk-through's `docker run`, compose, systemd, a CI job).

Open-source Linkerd has no autoregistration (Buoyant Enterprise's ExternalGroup and
Istio's WorkloadGroup do). Here a small template (builder.config.group: namespace,
workloads, network, labels, Service) is filled from what each container carries:
- its image's labels: io.meshexp.workload, .ports, .identity, .trust-domain and
  .readiness (the probe);
- its environment: WORKLOAD_NAME and WORKLOAD_NAMESPACE (else the image's defaults);
- its addresses on the group's network (else its first): IPv4 and, on a dual-stack
  network, IPv6 too where its image's Linkerd release takes two (2.17+).

Each container is its own ExternalWorkload, named stably from the workload and the
container (`smiley-1` for a container `smiley-1`, `smiley-edge` for `edge`),
labelled `app: WORKLOAD`; one Service per workload selects every instance. The
objects are server-side applied, and only when they differ from what the server
holds. Ready is the status keeper's (builder.cluster.keeper, the image's probe). A
stopped container stays registered and not ready; a removed one is marked not ready,
then deleted.

Ownership: what the registrar makes carries `meshexp.io/registrar: ID` (the engine's
host name by default). It changes or deletes nothing without its own ID, so objects
made by hand, by `run --apply` or by the registrar of another engine are left alone.
Started after the containers it registers what runs; restarted it reads the Ready
conditions back and writes nothing that is already right.

It follows the engine's events: a container's start, death, removal or rename makes
it list the containers at once, a health change makes it probe at once (the health
checks' own execs do neither), and it lists them again every RESYNC_SECONDS in case
an event was missed. (One module of over 400 lines: the plan, the ownership rule and
the event loop are read together whenever one of them changes.)
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.cluster import kube
from builder.cluster.keeper import POLL_SECONDS, Health, StatusKeeper, Target
from builder.cluster.manifests import (
    PortTriple,
    external_workload_document,
    left_out_line,
    listed_addresses,
    not_ready_condition,
    opaque_ports_of,
    service_document,
)
from builder.config.contract import facts_for
from builder.config.group import Group
from builder.config.identity import IDENTITY_STYLES, WorkloadIdentity, workload_identity
from builder.config.validation import DNS_LABEL, DNS_NAME, KUBE_LABEL_VALUE
from builder.core import image_contract
from builder.core.errors import EngineError, MeshexpError
from builder.engine import docker_engine

OWNER = "meshexp.io/registrar"
CONTAINER_ANNOTATION = "meshexp.io/container"
WORKLOAD_LABEL = image_contract.WORKLOAD
# `run --apply` registers its own containers; the registrar leaves those to it.
RUN_LABEL = image_contract.RUN
RESYNC_SECONDS = 30.0
EVENTS_BACKOFF = 5.0
# The engine's container events after which the containers are listed again.
RELIST_ON = frozenset(
    ("start", "die", "destroy", "rename", "pause", "unpause", "restart", "oom", "update")
)


@dataclass(frozen=True)
class Instance:
    """One container of one of our images, as the registration sees it."""

    container: str
    container_id: str
    workload: str  # WORKLOAD_NAME: the Service's name and the `app` label
    namespace: str
    name: str  # the ExternalWorkload's
    ips: tuple[str, ...]  # those its ExternalWorkload lists, IPv4 first; () while stopped
    running: bool
    ports: tuple[PortTriple, ...]
    identity: WorkloadIdentity
    left_out: str = ""  # an address its image's Linkerd release cannot list, and why
    opaque: tuple[int, ...] = ()  # its opaque ports (its PORT_PROTOCOLS label)

    @property
    def ref(self) -> kube.ObjectRef:
        return kube.ObjectRef("ExternalWorkload", self.name, self.namespace)


@dataclass(frozen=True)
class Skipped:
    """A container of ours that is not registered, and why."""

    container: str
    reason: str


def instance_name(workload: str, container: str) -> str:
    """The ExternalWorkload's name: the container's, made a DNS label, with the workload
    in front unless it is there already; too long, it ends in a hash of the container's."""
    base = re.sub(r"[^a-z0-9-]+", "-", container.lower()).strip("-")
    if base != workload and not base.startswith(f"{workload}-"):
        base = f"{workload}-{base}" if base else workload
    if len(base) > 63:
        digest = hashlib.sha256(container.encode()).hexdigest()[:8]
        base = f"{base[:54].rstrip('-')}-{digest}"
    return base


def environment(attrs: dict[str, Any]) -> dict[str, str]:
    """The container's environment (the image's, then its own `-e`)."""
    pairs = ((attrs.get("Config") or {}).get("Env")) or []
    return dict(pair.partition("=")[::2] for pair in pairs)


def ports_of(contract: image_contract.ImageContract) -> tuple[PortTriple, ...] | str:
    """The image's ports (its PORTS label: NAME:PORT/PROTOCOL,...), or why not."""
    if image_contract.PORTS not in contract.present or not contract.ports:
        return f"its image has no {image_contract.PORTS} label: rebuild it with this meshexp-build"
    return tuple((port.name, port.number, port.protocol) for port in contract.ports)


def addresses(attrs: dict[str, Any], network: str | None) -> tuple[str, ...] | None:
    """The container's addresses on `network` (else on its first network with one, by
    name), IPv4 first; () while it has none (stopped), None when it is not on `network`."""
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    if network is not None:
        if network not in networks:
            return None
        return docker_engine.endpoint_addresses(networks[network])
    found = (docker_engine.endpoint_addresses(n) for _, n in sorted(networks.items()))
    return next((held for held in found if held), ())


def workload_ips_of(contract: image_contract.ImageContract) -> tuple[int, str]:
    """How many workload IPs the image's Linkerd release takes (its LINKERD_RELEASE
    label; one for an image without it), and the release."""
    release = contract.linkerd_release
    try:
        return facts_for(release).max_workload_ips, release
    except MeshexpError:
        return 1, release or f"of an image without {image_contract.LINKERD_RELEASE}"


def instance_of(attrs: dict[str, Any], group: Group) -> Instance | Skipped:
    """What the registration makes of one container (`docker inspect` attributes)."""
    container = str(attrs.get("Name", "")).lstrip("/")
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    env = environment(attrs)
    if RUN_LABEL in labels:
        return Skipped(container, "started by `meshexp-build run --apply`, which registers it")
    try:
        contract = image_contract.ImageContract.from_labels(labels)
    except image_contract.ContractError as exc:
        return Skipped(container, str(exc))
    workload = env.get("WORKLOAD_NAME") or contract.workload
    namespace = env.get("WORKLOAD_NAMESPACE") or contract.namespace
    for what, value in (("WORKLOAD_NAME", workload), ("WORKLOAD_NAMESPACE", namespace)):
        if not DNS_LABEL.fullmatch(value):
            return Skipped(container, f"{what}={value!r} is not a DNS-1123 label")
    if group.workloads and workload not in group.workloads:
        return Skipped(container, f"workload {workload} is not in the group's workloads")
    if group.namespace and namespace != group.namespace:
        return Skipped(
            container,
            f"its identity names namespace {namespace}, the group's is {group.namespace} "
            f"(start it with -e WORKLOAD_NAMESPACE={group.namespace})",
        )
    ports = ports_of(contract)
    if isinstance(ports, str):
        return Skipped(container, ports)
    said = image_contract.IDENTITY in contract.present
    style, trust_domain = (contract.identity if said else ""), contract.trust_domain
    if style not in IDENTITY_STYLES or not trust_domain or not DNS_NAME.fullmatch(trust_domain):
        return Skipped(container, "its image does not say its identity style and trust domain")
    found = addresses(attrs, group.network)
    if found is None:
        return Skipped(container, f"it is not on network {group.network}")
    most, release = workload_ips_of(contract)
    ips, left_out = listed_addresses(found, most)
    state = attrs.get("State") or {}
    return Instance(
        container=container,
        container_id=str(attrs.get("Id", "")),
        workload=workload,
        namespace=namespace,
        name=instance_name(workload, container),
        ips=tuple(ips),
        running=bool(state.get("Running")),
        ports=ports,
        identity=workload_identity(style, trust_domain, namespace, workload),
        left_out=left_out_line(left_out, release) if left_out else "",
        opaque=opaque_ports_of(contract.probes),
    )


def subset(wanted: Any, held: Any) -> bool:
    """Whether the server's object holds everything `wanted` says (it adds its own)."""
    if isinstance(wanted, dict):
        return isinstance(held, dict) and all(subset(v, held.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(held, list)
            and len(wanted) == len(held)
            and all(subset(w, h) for w, h in zip(wanted, held, strict=True))
        )
    return bool(wanted == held)


def registrar_id(text: str) -> str:
    """A label value from the engine's host name (or the --id given)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:63].rstrip("-_.")
    return value if value and KUBE_LABEL_VALUE.fullmatch(value) else "meshexp"


def default_owner() -> str:
    """This engine's registrar ID: its host name, as a label value."""
    return registrar_id(docker_engine.engine_info().name)


def ready_of(found: dict[str, Any]) -> Health | None:
    """The Ready condition the server holds, as the keeper would have written it."""
    for held in (found.get("status") or {}).get("conditions") or []:
        if held.get("type") == "Ready":
            return Health(
                held.get("status") == "True", held.get("reason", ""), held.get("message", "")
            )
    return None


@dataclass
class Registrar:
    """Registers our containers in the cluster of `kubeconfig` and keeps them true."""

    kubeconfig: Path
    group: Group
    owner: str
    say: Callable[[str], None] = lambda line: None
    on_service: Callable[[str, str, str], None] = lambda namespace, name, cluster_ip: None
    keeper: StatusKeeper = field(init=False)
    registered: dict[tuple[str, str], Instance] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    services: set[tuple[str, str]] = field(default_factory=set)  # looked at this round
    announced: dict[tuple[str, str], str] = field(default_factory=dict)  # on_service told
    namespaces: set[str] = field(default_factory=set)
    applies: int = 0
    syncs: int = 0
    _close_events: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self.keeper = StatusKeeper(
            self.kubeconfig, [], on_change=self._said_ready, on_error=self.say
        )

    @property
    def labels(self) -> dict[str, str]:
        return {
            **dict(self.group.labels),
            kube.MANAGED_BY[0]: kube.MANAGED_BY[1],
            OWNER: self.owner,
        }

    def _said_ready(self, target: Target, health: Health) -> None:
        state = "True" if health.ready else "False"
        self.say(
            f"{target.namespace}/{target.name}: Ready {state} ({health.reason}: {health.message})"
        )

    # One round --------------------------------------------------------------

    def step(self, resync: bool = True) -> None:
        """With `resync`, list the containers and register, update or remove; then probe
        every registered one and write what changed."""
        if resync and not self.keeper.waiting():
            try:
                self.sync(
                    self.keeper.connected(), docker_engine.containers_labelled(WORKLOAD_LABEL)
                )
            except kube.KubeUnreachable as exc:
                self.keeper.unreachable(exc)
                return
        self.keeper.step()

    def sync(self, client: kube.KubeClient, containers: list[dict[str, Any]]) -> None:
        """Make the cluster hold exactly our registered containers (of `containers`)."""
        self.syncs += 1
        self.services.clear()
        instances, skipped = self.plan(containers)
        ours = {
            (found["metadata"]["namespace"], found["metadata"]["name"]): found
            for found in kube.list_objects(client, "ExternalWorkload", {OWNER: self.owner})
        }
        kept: dict[tuple[str, str], Instance] = {}
        for instance in instances:
            key = (instance.namespace, instance.name)
            held = ours.get(key)
            if held is None and not (instance.running and instance.ips):
                continue  # registered once it runs
            if held is None:
                held = kube.get_object(client, instance.ref)
                if held is not None:
                    skipped[instance.container] = (
                        f"{instance.ref} exists and was not made by this registrar; left alone"
                    )
                    continue
            try:
                if instance.running and instance.ips:
                    self._apply_instance(client, instance, held)
                if self.group.service.enabled:
                    self._ensure_service(client, instance)
            except kube.KubeUnreachable:
                raise
            except kube.KubeError as exc:  # refused (say, an admission policy): say, go on
                skipped[instance.container] = str(exc.message)
                if held is None:
                    continue
            kept[key] = instance
            if key not in self.registered and held is not None:
                seen = ready_of(held)  # restarted: what is right already is not written again
                if seen is not None:
                    self.keeper.written.setdefault(instance.container, seen)
        for key, held in ours.items():
            if key not in kept:
                self._remove(client, key, held)
        for container, reason in skipped.items():
            if self.skipped.get(container) != reason:
                self.say(f"{container}: not registered: {reason}")
        self.skipped = skipped
        self.registered = kept
        self.keeper.targets = [
            Target(i.container, i.name, i.namespace, i.ports[0][1]) for i in kept.values()
        ]
        current = {i.container for i in kept.values()}
        for container in list(self.keeper.written):
            if container not in current:
                del self.keeper.written[container]

    def plan(self, containers: list[dict[str, Any]]) -> tuple[list[Instance], dict[str, str]]:
        """The instances to register and the containers left out, with why (two
        containers whose names give one ExternalWorkload name: the first by name wins)."""
        instances: dict[tuple[str, str], Instance] = {}
        skipped: dict[str, str] = {}
        for attrs in sorted(containers, key=lambda a: str(a.get("Name", ""))):
            found = instance_of(attrs, self.group)
            if isinstance(found, Skipped):
                skipped[found.container] = found.reason
                continue
            key = (found.namespace, found.name)
            if key in instances:
                skipped[found.container] = (
                    f"container {instances[key].container} already has the name {found.name}; "
                    "rename one (docker rename)"
                )
                continue
            instances[key] = found
        return list(instances.values()), skipped

    def _apply_instance(
        self, client: kube.KubeClient, instance: Instance, held: dict[str, Any] | None
    ) -> None:
        document = external_workload_document(
            instance.name,
            instance.namespace,
            {"app": instance.workload, **self.labels},
            instance.identity,
            list(instance.ips),
            list(instance.ports),
            instance.opaque,
        )
        document["metadata"]["annotations"] = {
            **document["metadata"].get("annotations", {}),
            CONTAINER_ANNOTATION: f"{instance.container} {instance.container_id[:12]}",
        }
        if (
            held is not None
            and subset(document["metadata"], held.get("metadata"))
            and subset(document["spec"], held.get("spec"))
        ):
            return  # already right: nothing is written
        if instance.namespace not in self.namespaces:
            kube.ensure_namespace(client, instance.namespace)
            self.namespaces.add(instance.namespace)
        kube.apply_documents(client, [document])
        self.applies += 1
        verb = "registered" if held is None else "updated"
        self.say(
            f"{instance.namespace}/{instance.name}: {verb} (container {instance.container} "
            f"at {' and '.join(instance.ips)})"
            + (f"; {instance.left_out}" if instance.left_out else "")
        )

    def _ensure_service(self, client: kube.KubeClient, instance: Instance) -> None:
        key = (instance.namespace, instance.workload)
        if key in self.services:
            return
        ref = kube.ObjectRef("Service", instance.workload, instance.namespace)
        document = service_document(
            instance.workload,
            instance.namespace,
            {"app": instance.workload, **self.labels},
            list(instance.ports),
            self.group.service.port,
            opaque=instance.opaque,
        )
        held = kube.get_object(client, ref)
        theirs = (
            held is not None and (held["metadata"].get("labels") or {}).get(OWNER) != self.owner
        )
        if theirs:
            self.say(f"{ref} exists and was not made by this registrar: left as it is")
        elif held is None or not (
            subset(document["metadata"], held.get("metadata"))
            and subset(document["spec"], held.get("spec"))
        ):
            kube.apply_documents(client, [document])
            self.applies += 1
            held = kube.get_object(client, ref)
            self.say(f"{ref}: applied, selecting app={instance.workload}")
        cluster_ip = str(((held or {}).get("spec") or {}).get("clusterIP") or "")
        if cluster_ip and self.announced.get(key) != cluster_ip:
            self.on_service(instance.namespace, instance.workload, cluster_ip)
            self.announced[key] = cluster_ip
        self.services.add(key)

    def _remove(self, client: kube.KubeClient, key: tuple[str, str], held: dict[str, Any]) -> None:
        """The container is gone: not ready first (a proxy drops it at once), then deleted;
        the Service too once no ExternalWorkload of its workload is left."""
        namespace, name = key
        seen = ready_of(held)
        if seen is None or seen.ready:
            with contextlib.suppress(kube.KubeError):
                kube.set_status(
                    client,
                    name,
                    namespace,
                    not_ready_condition("ContainerRemoved", "its container was removed"),
                )
        ref = kube.ObjectRef("ExternalWorkload", name, namespace)
        kube.delete_managed(client, [ref])
        self.say(f"{namespace}/{name}: deregistered (its container is gone)")
        workload = (held["metadata"].get("labels") or {}).get("app", "")
        if not workload or kube.list_objects(
            client, "ExternalWorkload", {"app": workload}, namespace
        ):
            return
        service = kube.ObjectRef("Service", workload, namespace)
        found = kube.get_object(client, service)
        if found is not None and (found["metadata"].get("labels") or {}).get(OWNER) == self.owner:
            kube.delete_managed(client, [service])
            self.announced.pop((namespace, workload), None)
            self.say(f"{service}: deleted (no instance is left)")

    # In the foreground ------------------------------------------------------

    def run(self, stop: Callable[[], bool]) -> None:
        """Until `stop()`: a round each POLL_SECONDS, at once after an engine event, with
        a full listing after a container's start, death, removal or rename and every
        RESYNC_SECONDS."""
        wake, relist = threading.Event(), threading.Event()
        watcher = threading.Thread(target=self._watch, args=(wake, relist, stop), daemon=True)
        watcher.start()
        next_sync = 0.0
        try:
            while not stop():
                started = time.monotonic()
                resync = relist.is_set() or started >= next_sync
                wake.clear()
                relist.clear()
                if resync:
                    next_sync = started + RESYNC_SECONDS
                try:
                    self.step(resync)
                except EngineError as exc:  # the engine went away: say so, try again
                    self.say(str(exc))
                    next_sync = 0.0
                wake.wait(max(0.0, POLL_SECONDS - (time.monotonic() - started)))
        finally:
            self._close_events()

    def _watch(
        self, wake: threading.Event, relist: threading.Event, stop: Callable[[], bool]
    ) -> None:
        """The engine's events wake the loop (a health change: a probe round; a container
        started, dead, removed or renamed: a listing too). The health checks' own execs
        wake nothing. A lost stream is opened again."""
        while not stop():
            try:
                events, self._close_events = docker_engine.container_events(WORKLOAD_LABEL)
            except EngineError as exc:
                self.say(str(exc))
                time.sleep(EVENTS_BACKOFF)
                continue
            relist.set()  # whatever happened while no stream was open
            wake.set()
            for action in events:
                kind = action.split(":")[0]
                if kind in RELIST_ON:
                    relist.set()
                if kind in RELIST_ON or kind == "health_status":
                    wake.set()
            if not stop():
                time.sleep(EVENTS_BACKOFF)
