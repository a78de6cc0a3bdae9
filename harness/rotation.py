"""What the rotation and restart tests and the soak bench set up in the mesh lab: the
trust-anchor procedure of the README's "Rotation" (two instances of each workload behind
one Service each, registered by `register`; `certs --rotate` and `lab certs` for each
phase, then each instance restarted, one at a time, each Ready again before the next),
and the production topology's external SPIRE server with an agent-only smiley.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.cluster import kube
from builder.cluster.certs import ROTATION_PHASES, rotate_certs
from builder.cluster.spire_server import SERVER_SOCKET, build_server_image, register, start_server
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab, lab_certs
from harness import faces
from harness.lab import into_lab
from harness.registration import Running, all_ready, docker_run, ready

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


def restart_wave(lab: Lab, client: Any, names: list[str], serving: dict[str, str]) -> None:
    """Restart one instance of each workload (a rolling restart's step: every Service
    keeps its other instance) and wait until each is Ready again. A face instance is out
    of the load meanwhile, as a Service would take it out."""
    started = {}
    for name in names:
        serving.pop(name, None)
        started[name] = docker_engine.inspect_if_exists(name)["State"]["StartedAt"]
        docker_engine.restart_container(name)

    def back(name: str) -> bool:
        state = docker_engine.inspect_if_exists(name)["State"]
        healthy = state.get("Health", {}).get("Status") == "healthy"
        condition = ready(client, name) or {}
        again = state["StartedAt"] != started[name]
        return bool(again and healthy and condition.get("status") == "True")

    assert faces.wait_for(lambda: all(back(name) for name in names), timeout=READY_AGAIN), {
        name: ready(client, name) for name in names
    }
    time.sleep(2)  # the destination controller hands the endpoints back to the proxies
    for name in names:
        if name.startswith("face-"):
            serving[name] = face_ip(lab, name)


WAVES = (["smiley-1", "color-1", "face-1"], ["smiley-2", "color-2", "face-2"])


def rotate_trust_anchor(
    lab: Lab, serving: dict[str, str], each_phase: Callable[[str, float], None] = lambda *_: None
) -> None:
    """The three phases, each: the certificates, the control plane, then every instance
    in two waves (the first instance of each workload, then the second)."""
    client = kube.connect(lab.kubeconfig)
    for phase in ROTATION_PHASES:
        began = time.monotonic()
        rotate_certs(folder=lab.folder / "certs", phase=phase)
        lab_certs(folder=lab.folder)
        for wave in WAVES:
            restart_wave(lab, client, wave, serving)
        each_phase(phase, time.monotonic() - began)


def production_trio(
    lab: Lab, mesh_settings: Settings, prod_settings: Settings, scratch: Path
) -> dict[str, Any]:
    """The production topology's external SPIRE server on the lab's network (signing with
    the lab's issuer), an agent-only smiley joined to it by a join token, and color and
    face (demo images): each run into the lab. The server's container name is "server"."""
    server = f"{lab.name}-spire"
    build_server_image(settings=prod_settings, on_line=lambda line: None)
    address = start_server(
        settings=prod_settings, network=lab.network, name=server, certs=lab.folder / "certs"
    )
    [registration] = register(
        server=server,
        settings=prod_settings,
        workloads=[find_workload("smiley")],
        tokens_dir=scratch / "tokens",
    )
    assert registration.token_file is not None
    certs = scratch / "smiley-certs"
    shutil.copytree(lab.folder / "certs", certs)
    shutil.copyfile(registration.token_file, certs / "join-token")
    agent_env = {
        "SPIRE_SERVER_ADDRESS": address,
        "SPIRE_JOIN_TOKEN_FILE": "/opt/spire/certs/join-token",
    }
    started: dict[str, Any] = {"server": server}
    for name, settings in (
        ("smiley", prod_settings),
        ("color", mesh_settings),
        ("face", mesh_settings),
    ):
        env = agent_env if name == "smiley" else FACE_ENV if name == "face" else {}
        started[name] = into_lab(
            lab,
            settings,
            name,
            f"{lab.name}-prod-{name}",
            env=env,
            certs=certs if name == "smiley" else None,
        )
    return started


def spire_server_healthy(server: str, settings: Settings) -> bool:
    if not docker_engine.container_state(server).get("Running"):
        return False
    code, _ = docker_engine.exec_in(
        server,
        ["spire-server", "healthcheck", "-socketPath", SERVER_SOCKET],
        user=str(settings.spire_uid),
    )
    return code == 0


def agents_known(server: str, settings: Settings) -> str:
    """`spire-server agent list` on the server: the agents it knows."""
    code, out = docker_engine.exec_in(
        server,
        ["spire-server", "agent", "list", "-socketPath", SERVER_SOCKET],
        user=str(settings.spire_uid),
    )
    assert code == 0, out
    return out
