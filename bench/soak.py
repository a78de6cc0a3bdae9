"""`make soak`: nothing lost over time, measured in the mesh lab with the real control plane
and the real proxy, under a steady load (face called 5 times a second; face calls smiley
and color over mTLS): SVIDs rotating, the SPIRE CA rotating, each control-plane part
restarted (or its process killed), and the trust anchor rotated end to end with two
instances of each workload. Each scenario is bounded in time; the whole run takes about
11 minutes on 2 cores. The figures go to bench/results/soak.json and REPORT.md.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common, report
from bench.lab import sources
from builder.build.image import build_workload_image
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab, lab_status, running_lab
from harness import equipment
from harness.lab import into_lab
from harness.load import SteadyLoad, identity_refreshes, served_svid, signing_ca
from harness.rotation import (
    FACE_ENV,
    INSTANCES,
    agents_known,
    face_ip,
    production_trio,
    remove_pairs,
    rotate_trust_anchor,
    spire_server_healthy,
    start_pairs,
)

NAME = "meshexp-bench-soak"
SVID_TTL, CA_TTL = "30s", "3m"
SVID_WINDOW_S = 120.0  # about 8 renewals of a 30 s SVID in each proxy
CA_ROTATIONS = 2  # a 3 min CA: the next one is active after 2.5 min, the one after at 4
CA_LIMIT_S = 330.0
READY_AGAIN_S = 60.0
AFTER_S = 5.0  # traffic after a restarted part is ready again
# (what, role, how): each control-plane part, restarted by the engine as a kubelet would
PARTS = (
    ("destination and policy pod restarted", "destination", "restart"),
    ("destination controller's pod: its process killed", "destination", "kill"),
    ("policy controller killed", "destination", "kill policy"),
    ("identity pod restarted", "identity", "restart"),
    ("API server restarted", "apiserver", "restart"),
    ("DNS restarted", "dns", "restart"),
)


def trio(lab: Lab, images: dict[str, str], env: dict[str, str], tag: str) -> dict[str, Any]:
    started = {}
    for name in ("smiley", "color", "face"):
        started[name] = into_lab(
            lab,
            common.settings(),
            name,
            f"{NAME}-{tag}-{name}",
            env={**env, **(FACE_ENV if name == "face" else {})},
            image=images[name],
        )
    return started


def remove(started: dict[str, Any]) -> None:
    for run in started.values():
        docker_engine.remove_container(run.name)


def row(scenario: str, figures: Any, detail: str) -> dict[str, Any]:
    print(f"{scenario}: {figures.row()} {detail}", flush=True)
    if figures.failures:
        print("  first failures: " + "; ".join(figures.failures[:3]), flush=True)
    return {"scenario": scenario, **figures.row(), "detail": detail}


def svid_rotation(lab: Lab, images: dict[str, str]) -> dict[str, Any]:
    started = trio(lab, images, {"SPIRE_SVID_TTL": SVID_TTL}, "svid")
    try:
        first = {name: identity_refreshes(run.ip) for name, run in started.items()}
        with SteadyLoad(lambda: [started["face"].ip]) as load:
            time.sleep(SVID_WINDOW_S)
            figures = load.stop()
        renewed = {name: identity_refreshes(run.ip) - first[name] for name, run in started.items()}
    finally:
        remove(started)
    detail = "SVIDs renewed (proxy's counter): " + ", ".join(f"{n} {c}" for n, c in renewed.items())
    return row(f"SVID rotation (SPIRE_SVID_TTL={SVID_TTL})", figures, detail)


def ca_rotation(
    lab: Lab, images: dict[str, str], settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SPIRE CA rotating twice in each workload; the trio is left running."""
    started = trio(lab, images, {"SPIRE_SVID_TTL": SVID_TTL, "SPIRE_CA_TTL": CA_TTL}, "ca")
    cas = {name: [signing_ca(served_svid(run.name, settings))] for name, run in started.items()}
    began = time.monotonic()
    with SteadyLoad(lambda: [started["face"].ip]) as load:
        while time.monotonic() - began < CA_LIMIT_S:
            for name, run in started.items():
                key = signing_ca(served_svid(run.name, settings))
                if key != cas[name][-1]:
                    cas[name].append(key)
            if all(len(seen) > CA_ROTATIONS for seen in cas.values()):
                break
            time.sleep(5)
        time.sleep(3)
        figures = load.stop()
    detail = "SPIRE CAs that signed the served SVID, after the first: " + ", ".join(
        f"{name} {len(seen) - 1}" for name, seen in cas.items()
    )
    return row(f"SPIRE CA rotation (SPIRE_CA_TTL={CA_TTL})", figures, detail), started


def process_of(container: str, program: str) -> int:
    top = docker_engine.client().containers.get(container).top(ps_args="-eo pid,args")
    [pid] = [int(line[0]) for line in top["Processes"] if line[1].split()[0] == program]
    return pid


def part_ready(lab: Lab, role: str) -> bool:
    _, states = lab_status(folder=lab.folder)
    state = next((s for s in states if s.role == role), None)
    return state is not None and state.status == "running" and "not ready" not in state.detail


def restart_part(lab: Lab, face: str, what: str, role: str, how: str) -> dict[str, Any]:
    container = f"{lab.name}-{role}"
    restarts = docker_engine.inspect_if_exists(container)["RestartCount"]
    with SteadyLoad(lambda: [face]) as load:
        time.sleep(2)
        began = time.monotonic()
        if how == "restart":
            docker_engine.restart_container(container)
        else:
            program = "/lab/bin/policy-controller" if how == "kill policy" else None
            pid = process_of(container, program) if program else None
            pid = pid or int(docker_engine.container_state(container)["Pid"])
            os.kill(pid, signal.SIGKILL)
            wait(lambda: docker_engine.inspect_if_exists(container)["RestartCount"] > restarts)
        wait(lambda: part_ready(lab, role))
        ready_after = time.monotonic() - began
        time.sleep(AFTER_S)
        figures = load.stop()
    return row(what, figures, f"ready again after {ready_after:.1f} s")


def wait(condition: Callable[[], bool], limit: float = READY_AGAIN_S) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {limit:.0f} s")
        time.sleep(0.2)


def trust_anchor(lab: Lab, images: dict[str, str]) -> dict[str, Any]:
    phases: list[str] = []
    try:
        running = start_pairs(docker_engine.client(), lab, images, "soak-bench")
        serving = {name: face_ip(lab, name) for name in INSTANCES if name.startswith("face-")}
        with SteadyLoad(lambda: sorted(serving.values())) as load:
            rotate_trust_anchor(
                lab, serving, lambda phase, took: phases.append(f"{phase} {took:.0f} s")
            )
            figures = load.stop()
        running.end()
    finally:
        remove_pairs()
    detail = f"2 instances of smiley, color, face; phases: {', '.join(phases)}"
    return row("trust-anchor rotation (bundle, issuer, finish)", figures, detail)


def spire_server_restart(lab: Lab, settings: Settings, scratch: Path) -> dict[str, Any]:
    """The production topology's external SPIRE server restarted under load."""
    prod = common.settings(topology="production", image_name="meshexp-bench/prod-{workload}")
    started = production_trio(lab, settings, prod, scratch)
    server = started.pop("server")
    try:
        with SteadyLoad(lambda: [started["face"].ip]) as load:
            time.sleep(2)
            began = time.monotonic()
            docker_engine.restart_container(server)
            wait(lambda: spire_server_healthy(server, prod))
            ready_after = time.monotonic() - began
            time.sleep(10)  # the agent's next syncs with the server
            figures = load.stop()
        known = "spire/agent/join_token/" in agents_known(server, prod)
    finally:
        remove(started)
        docker_engine.remove_container(server)
    detail = (
        f"healthy again after {ready_after:.1f} s; the agent "
        f"{'still known to it' if known else 'UNKNOWN to it afterwards'}"
    )
    return row("external SPIRE server restarted (production smiley)", figures, detail)


def main() -> None:
    settings = common.settings()
    images = {
        name: build_workload_image(workload=find_workload(name), settings=settings).reference
        for name in ("smiley", "color", "face")
    }
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="meshexp-bench-soak-") as scratch,
        running_lab(
            folder=Path(scratch),
            sources=sources(),
            crds=(equipment.LINKERD_CRDS.read_text(),),
            name=NAME,
        ) as lab,
    ):
        rows.append(svid_rotation(lab, images))
        ca_row, started = ca_rotation(lab, images, settings)
        rows.append(ca_row)
        try:
            for what, role, how in PARTS:
                rows.append(restart_part(lab, started["face"].ip, what, role, how))
        finally:
            remove(started)
        rows.append(spire_server_restart(lab, settings, Path(scratch)))
        rows.append(trust_anchor(lab, images))
    took = time.monotonic() - began
    figures = [
        common.Figure(
            f"{r['scenario']}: failed requests", r["failures"], "", "0", r["failures"] == 0
        )
        for r in rows
    ]
    figures.append(common.Figure("whole soak", took / 60, "min", "< 15 min", took < 900))
    common.save("soak", figures, {"scenarios": rows})
    report.main()


if __name__ == "__main__":
    main()
