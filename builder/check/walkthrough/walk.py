"""One run of the walk-through (`Walk`: what it was given, what its steps found), what it
returns (`E2EResult`), and how it fails and tidies up: a step's failure, whatever it is
under the step, becomes one StepFailed line naming the step; `Cleanup` undoes what the
run made in reverse order, each removal tolerant of parts already gone, then looks for
what must be gone and names what is still there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from builder.check.browser import Cell
from builder.check.walkthrough.steps import E2EConfig, Runner, kubectl, subprocess_runner
from builder.cluster import kube
from builder.config.settings import Settings
from builder.core import wait
from builder.core.errors import CheckError, MeshexpError
from builder.engine import docker_engine

CLUSTER_READY = "cluster create -> node Ready"
LINKERD_AVAILABLE = "Linkerd install -> control plane Available"
FIRST_ANSWER = "external workloads' docker run -> face's first meshed answer"
WHOLE = "the whole walk-through (cluster to cleanup)"
# How long a removal the engine has in progress may take before it counts as left behind.
GONE_WITHIN_S = 60.0
# What a step can fail with, under it: ours, the engine's, the operating system's, a wait.
STEP_ERRORS: tuple[type[BaseException], ...] = (
    MeshexpError,
    OSError,
    wait.TimedOut,
    *docker_engine.ENGINE_ERRORS,
)


class StepFailed(CheckError):
    """A step of the walk-through failed; the message names it and the cause."""


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An error as one line: its first line, and its last where it has more (where a
    tool's output ends with what went wrong), cut to `limit` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def at_step(number: int, total: int, name: str) -> Iterator[None]:
    """Turn any failure under a step into one StepFailed naming the step."""
    try:
        yield
    except STEP_ERRORS as exc:
        raise StepFailed(
            f"e2e stopped at step {number}/{total} ({name}): {one_line(exc)}"
        ) from None


@dataclass
class Cleanup:
    """Undo actions, run in reverse order, each attempted even if another fails; and what
    must be gone afterwards (containers and networks by name)."""

    actions: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], object]) -> None:
        self.actions.append((name, action))

    def run(self) -> list[str]:
        """Run every action; what each failed with."""
        errors = []
        for name, action in reversed(self.actions):
            try:
                action()
            except STEP_ERRORS as exc:
                errors.append(f"{name}: {one_line(exc, 300)}")
        self.actions.clear()
        return errors

    def left(self) -> list[str]:
        """What must be gone and is still there."""
        return [
            f"container {name}" for name in self.containers if docker_engine.inspect_if_exists(name)
        ] + [f"network {name}" for name in self.networks if docker_engine.network_exists(name)]

    def tidy(self, gone_within: float | None = None) -> str:
        """Run the actions, then wait for what must be gone (a removal in progress ends);
        "" when nothing is left, else what is, and what the actions failed with."""
        errors = self.run()
        gone_within = GONE_WITHIN_S if gone_within is None else gone_within
        try:
            wait.until(
                lambda: wait.NotYet(", ".join(left)) if (left := self.left()) else True,
                timeout=gone_within,
                interval=1.0,
            )
        except wait.TimedOut as exc:
            return "cleanup left behind " + "; ".join([exc.reason, *errors])
        except docker_engine.ENGINE_ERRORS as exc:
            return "cleanup could not look for what it left: " + one_line(exc, 300)
        return ""


@dataclass(frozen=True)
class E2EResult:
    answers: int
    smileys_external: float
    tls_from_face: int
    canary_share_external: float
    kept: bool
    server_ids: tuple[str, ...] = ()
    endpoint_slices: tuple[str, ...] = ()
    # after the external smiley is stopped: face's share of its fallback (Cursing), and
    # the ExternalWorkload's Ready condition as the keeper wrote it
    fallback_share: float = 0.0
    ready_after_kill: str = ""
    # the GUI's grid in Chromium, before and during the canary
    grid_before: tuple[Cell, ...] = ()
    grid_during: tuple[Cell, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    # what the run excepted and says so (offline: linkerd check's version checks)
    said: tuple[str, ...] = ()
    # registration by identity: face's share of the self-registered smiley, then while
    # the registration service's pod was deleted; face's share of its fallback while
    # its probe failed; seconds from docker stop to its ExternalWorkload gone
    self_registered: float = 0.0
    through_restart: float = 0.0
    probe_fallback: float = 0.0
    deregistered_after: float = 0.0
    # each image Linkerd's and Faces' pods ran, and the image ID the node pulled it as
    cluster_images: dict[str, str] = field(default_factory=dict)


@dataclass
class Walk:
    """One run of the walk-through: what it was given, and what its steps found."""

    config: E2EConfig
    settings: Settings
    run: Runner = subprocess_runner
    requests: int = 40
    cleanup: Cleanup = field(default_factory=Cleanup)
    timings: dict[str, float] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    # the node's address, the pod CIDR, kube-dns' and the GUI's NodePorts
    found: dict[str, str] = field(default_factory=dict)
    dns_ip: str = ""
    images: dict[str, str] = field(default_factory=dict)
    externals_started: float = 0.0
    answers: list[str] = field(default_factory=list)
    smileys: float = 0.0
    tls: int = 0
    grid_before: list[Cell] = field(default_factory=list)
    grid_during: list[Cell] = field(default_factory=list)
    server_ids: list[str] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)
    canary: float = 0.0
    fallback: float = 0.0
    ready_after_kill: str = ""
    # registration by identity: face's share of the self-registered smiley, then while
    # the registration service's pod was deleted; face's share of its fallback while
    # its probe failed; seconds from docker stop to its ExternalWorkload gone
    self_registered: float = 0.0
    through_restart: float = 0.0
    probe_fallback: float = 0.0
    deregistered_after: float = 0.0
    cluster_images: dict[str, str] = field(default_factory=dict)

    # the cluster's API, for what the steps read (builder.cluster.kube)
    _api: kube.KubeClient | None = None

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """A `kubectl` command line of the walk-through, replayed as the user types it."""
        return self.run(kubectl(self.config, *args), stdin=stdin)

    @property
    def api(self) -> kube.KubeClient:
        """A client of the cluster's API server (its kubeconfig), made once."""
        if self._api is None:
            self._api = kube.connect(self.config.kubeconfig)
        return self._api

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        """One object the steps need, or a KubeError naming it."""
        found = kube.get_object(self.api, kube.ObjectRef(kind, name, namespace))
        if found is None:
            raise kube.KubeError(f"no {kind} {namespace}/{name} in the cluster")
        return found

    def result(self) -> E2EResult:
        return E2EResult(
            len(self.answers),
            self.smileys,
            self.tls,
            self.canary,
            self.config.keep,
            tuple(self.server_ids),
            tuple(self.slices),
            self.fallback,
            self.ready_after_kill,
            tuple(self.grid_before),
            tuple(self.grid_during),
            self.timings,
            tuple(self.said),
            self.self_registered,
            self.through_restart,
            self.probe_fallback,
            self.deregistered_after,
            self.cluster_images,
        )
