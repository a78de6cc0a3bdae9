"""Keep each ExternalWorkload's Ready condition true to the container behind it.

Since Linkerd 2.16 Ready is only a status subresource, and Linkerd does no
health checking of external workloads: a dead workload stays Ready and keeps
getting traffic. The keeper probes every container `run` started and writes
Ready True, or False with a reason, whenever (and only when) that changes:

- ContainerStopped / ContainerPaused: the engine's state;
- ProxyNotReady: the proxy's /ready does not answer (a refusal by the default
  inbound policy counts as an answer: the proxy is up);
- WorkloadNotListening: no listening socket on the workload's port in the
  container's own network namespace (read from /proc, no exec);
- ProbeFailed / ProbeStarting: the image's readiness probe (the catalog's
  `readiness`, Docker's HEALTHCHECK running meshexp-probe in the container) fails
  as often as its failure threshold, or has not yet passed as often as its
  success threshold; the message is the probe's own answer.

An API server that goes away is retried with backoff, and the current truth
is written when it is back; a restarted container is followed by its name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from builder.cluster import kube
from builder.core import image_contract
from builder.core.errors import MeshexpError
from builder.core.net import proxy_readiness
from builder.core.wait import later
from builder.engine import docker_engine

POLL_SECONDS = 1.0  # 20 % of a core for 10 workloads at 0.5 s; half at 1 s (bench/keeper.py)
BACKOFF_MAX = 10.0


@dataclass(frozen=True)
class Target:
    """One container and the ExternalWorkload that stands for it."""

    container: str
    name: str
    namespace: str
    port: int


@dataclass(frozen=True)
class Health:
    ready: bool
    reason: str
    message: str


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(health: Health) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if health.ready else "False",
                "lastTransitionTime": now_rfc3339(),
                "reason": health.reason,
                "message": health.message,
            }
        ]
    }


def listening(pid: int, port: int) -> bool | None:
    """Whether a socket listens on `port` in the network namespace of process `pid`
    (None when that cannot be read here)."""
    found = False
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 3
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                found = True
    return found


def probe(target: Target) -> Health:
    """The container's truth now."""
    attrs = docker_engine.inspect_if_exists(target.container)  # one engine call a round
    state = attrs.get("State") or {}
    if state.get("Paused"):
        return Health(False, "ContainerPaused", f"container {target.container} is paused")
    if not state.get("Running"):
        return Health(False, "ContainerStopped", f"container {target.container} is not running")
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    found = (docker_engine.endpoint_addresses(n) for n in networks.values())
    ip = next((held[0] for held in found if held), "")  # IPv4 first; IPv6 on an IPv6-only one
    if not ip or not proxy_readiness(ip, certified=lambda: certified(attrs["Id"]))[0]:
        return Health(False, "ProxyNotReady", f"the proxy of {target.container} is not ready")
    if listening(int(state.get("Pid") or 0), target.port) is False:
        return Health(False, "WorkloadNotListening", f"nothing listens on port {target.port}")
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    docker_health = state.get("Health") or {}
    checked = probe_health(docker_health, labels)
    if docker_health.get("Status") == "starting":
        # Docker probes first one period after the start: until then, ask the probe.
        checked = probe_now(target.container, labels) or checked
    if checked is not None:
        return checked
    return Health(True, "Ready", f"proxy ready and port {target.port} listening")


# Containers whose proxy has logged its certified identity: read from the log once per
# container, where /ready refuses the keeper (a default policy that waits for a policy
# controller). Forgotten in bulk past a bound, so that a long-lived keeper stays small.
_certified: set[str] = set()
CERTIFIED_REMEMBERED = 4096


def certified(container_id: str) -> bool:
    """Whether the container's proxy has certified its identity (its log says so)."""
    if container_id not in _certified:
        if image_contract.CERTIFIED_LINE not in docker_engine.container_logs(container_id):
            return False
        if len(_certified) >= CERTIFIED_REMEMBERED:
            _certified.clear()
        _certified.add(container_id)
    return True


def probe_now(container: str, labels: dict[str, str]) -> Health | None:
    """The image's probe run once in the container now (None when it cannot be)."""
    try:
        needed = int(json.loads(labels.get(READINESS_LABEL, "{}")).get("success_threshold", 1))
    except (ValueError, AttributeError):
        return None
    if needed != 1:
        return None  # passes in a row are Docker's to count
    answered = docker_engine.exec_if_running(container, [image_contract.PROBE])
    if answered is None:
        return None
    code, output = answered
    said = (output.strip().splitlines() or ["no answer"])[-1][:300]
    if code == 0:
        return Health(True, "Ready", f"proxy ready; readiness probe: {said}")
    return Health(False, "ProbeStarting", f"the readiness probe has not passed yet ({said})")


READINESS_LABEL = image_contract.READINESS


def probe_health(health: dict[str, Any] | None, labels: dict[str, str]) -> Health | None:
    """Ready from the image's readiness probe, as Docker's health check ran it (None for an
    image without one): failures count as Docker counts them (the probe's
    failure_threshold), passes as the probe's success_threshold says, in Docker's last
    results."""
    if not health or not health.get("Status"):
        return None
    log = health.get("Log") or []
    answer = (log[-1].get("Output") or "").strip().splitlines()[-1:] if log else []
    said = answer[0][:300] if answer else "no answer yet"
    status = health["Status"]
    if status == "unhealthy":
        return Health(False, "ProbeFailed", said)
    if status != "healthy":
        return Health(False, "ProbeStarting", f"the readiness probe has not passed yet ({said})")
    try:
        needed = int(json.loads(labels.get(READINESS_LABEL, "{}")).get("success_threshold", 1))
    except (ValueError, AttributeError):
        needed = 1
    passes = 0
    for result in reversed(log):
        if result.get("ExitCode") != 0:
            break
        passes += 1
    if passes < needed:
        return Health(False, "ProbeStarting", f"{passes} of {needed} passes in a row ({said})")
    return Health(True, "Ready", f"proxy ready; readiness probe: {said}")


@dataclass
class StatusKeeper:
    """Probes targets and writes each change of their Ready condition, and only changes."""

    kubeconfig: Path
    targets: list[Target]
    on_change: Callable[[Target, Health], None] = lambda target, health: None
    on_error: Callable[[str], None] = lambda message: None
    written: dict[str, Health] = field(default_factory=dict)
    backoff: float = 0.0
    retry_at: float = 0.0
    writes: int = 0
    client: kube.KubeClient | None = None
    last_error: str = ""  # why the API server was last unreachable

    def step(self) -> None:
        """One round: probe every target, write what changed (or all, after an outage)."""
        if self.waiting():
            return
        try:
            client = self.connected()
            for target in self.targets:
                self._keep(client, target)
            self.backoff = 0.0
        except kube.KubeUnreachable as exc:
            self.unreachable(exc)

    def waiting(self) -> bool:
        """Whether the API server was away and the backoff has not yet passed."""
        return time.monotonic() < self.retry_at

    def connected(self) -> kube.KubeClient:
        """One client (and its connections) for every round."""
        if self.client is None:
            self.client = kube.connect(self.kubeconfig)
        return self.client

    def unreachable(self, exc: kube.KubeUnreachable) -> None:
        """The API server is away: retry with backoff; write the truth when back."""
        self.client = None
        self.backoff = min(BACKOFF_MAX, max(0.5, self.backoff * 2))
        self.retry_at = later(self.backoff)
        self.written.clear()
        self.last_error = str(exc.message)
        self.on_error(self.last_error)

    def _keep(self, client: kube.KubeClient, target: Target) -> None:
        health = probe(target)
        before = self.written.get(target.container)
        if before == health:
            return
        if health.reason == "ProbeStarting" and before is not None and before.ready:
            # Passed once already: only failures as many as the probe's threshold (Docker's
            # count, then ProbeFailed) take it out, as Kubernetes counts them.
            return
        try:
            kube.set_status(client, target.name, target.namespace, condition(health))
        except kube.KubeUnreachable:
            raise
        except kube.KubeError as exc:  # e.g. the ExternalWorkload was deleted: say, go on
            self.on_error(str(exc.message))
            return
        self.written[target.container] = health
        self.writes += 1
        self.on_change(target, health)

    def run(self, stop: Callable[[], bool]) -> None:
        while not stop():
            started = time.monotonic()
            self.step()
            with contextlib.suppress(ValueError):
                time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started)))


def targets_from_manifests(manifests_dir: Path, containers: tuple[str, ...] = ()) -> list[Target]:
    """What `run` wrote manifests for (`CONTAINER.yaml`): each container's workload."""
    targets = []
    for manifest in sorted(manifests_dir.glob("*.yaml")):
        if containers and manifest.stem not in containers:
            continue
        for doc in yaml.safe_load_all(manifest.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ExternalWorkload":
                meta, ports = doc["metadata"], doc["spec"]["ports"]
                targets.append(
                    Target(manifest.stem, meta["name"], meta["namespace"], int(ports[0]["port"]))
                )
    missing = set(containers) - {target.container for target in targets}
    if missing or not targets:
        raise MeshexpError(
            f"no manifests in {manifests_dir} for {sorted(missing) or 'any container'}: "
            "start workloads with `meshexp-build run` first"
        )
    return targets
