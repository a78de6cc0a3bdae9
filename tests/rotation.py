"""The trust-anchor procedure of the README's "Rotation", for its test and the soak bench:
two instances of each workload behind one Service each (registered by `register`),
`certs --rotate` and `lab certs` for each phase, then each instance restarted, one at a
time, each Ready again before the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from builder.cluster import kube
from builder.cluster.certs import ROTATION_PHASES, rotate_certs
from builder.engine import docker_engine
from builder.lab import Lab, lab_certs
from tests.integration import faces
from tests.registration import Running, all_ready, docker_run, ready

SERVICES = "{}.faces.svc.cluster.local:8000"
INSTANCES = {
    "smiley-1": ("smiley", {}),
    "smiley-2": ("smiley", {}),
    "color-1": ("color", {"COLOR": "blue"}),
    "color-2": ("color", {"COLOR": "blue"}),
    "face-1": ("face", {}),
    "face-2": ("face", {}),
}
FACE_ENV = {"SMILEY_SERVICE": SERVICES.format("smiley"), "COLOR_SERVICE": SERVICES.format("color")}
READY_AGAIN = 120.0  # seconds for a restarted instance to be Ready again (a loaded CI)


def start_pairs(engine: Any, lab: Lab, images: dict[str, str], owner: str) -> Running:
    """Every instance by the walk-through's `docker run` line, the registrar beside them;
    all registered and Ready."""
    for name, (workload, env) in INSTANCES.items():
        extra = FACE_ENV if workload == "face" else {}
        docker_run(engine, lab, name, images[workload], {"WORKLOAD_NAME": workload, **env, **extra})
    running = Running(lab, owner)
    client = kube.connect(lab.kubeconfig)
    names = list(INSTANCES)
    if not faces.wait_for(lambda: all_ready(client, names), timeout=180):
        running.end()
        raise AssertionError(({name: ready(client, name) for name in names}, running.lines[-20:]))
    return running


def remove_pairs() -> None:
    for name in INSTANCES:
        docker_engine.remove_container(name)


def face_ip(lab: Lab, name: str) -> str:
    return docker_engine.container_ip(name, lab.network)


def restart_one(lab: Lab, client: Any, name: str, serving: dict[str, str]) -> None:
    """Restart one instance and wait until it is Ready again (face's out of the load
    meanwhile)."""
    serving.pop(name, None)
    started = docker_engine.inspect_if_exists(name)["State"]["StartedAt"]
    docker_engine.restart_container(name)

    def back() -> bool:
        state = docker_engine.inspect_if_exists(name)["State"]
        healthy = state.get("Health", {}).get("Status") == "healthy"
        condition = ready(client, name) or {}
        return bool(state["StartedAt"] != started and healthy and condition.get("status") == "True")

    assert faces.wait_for(back, timeout=READY_AGAIN), (name, ready(client, name))
    time.sleep(2)  # the destination controller hands the endpoint back to the proxies
    if name.startswith("face-"):
        serving[name] = face_ip(lab, name)


def rotate_trust_anchor(
    lab: Lab, serving: dict[str, str], each_phase: Callable[[str, float], None] = lambda *_: None
) -> None:
    """The three phases, each: the certificates, the control plane, every instance."""
    client = kube.connect(lab.kubeconfig)
    for phase in ROTATION_PHASES:
        began = time.monotonic()
        rotate_certs(folder=lab.folder / "certs", phase=phase)
        lab_certs(folder=lab.folder)
        for name in INSTANCES:
            restart_one(lab, client, name, serving)
        each_phase(phase, time.monotonic() - began)
