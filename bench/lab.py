"""The mesh lab: `lab up` cold (the lab runtime image built first) and warm, the time
from `run` to face's first answer over mTLS, and the resident memory of the whole
lab (control plane and API server), with the real control plane and proxy.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import common
from builder.build.image import build_workload_image
from builder.config.catalog import find_workload
from builder.engine import docker_engine, lab_containers
from builder.lab import LABEL, RUNTIME_IMAGE, LabSources, lab_down, lab_up, run_in_lab
from harness import equipment

NAME = "meshexp-bench-lab"
WARM_RUNS = 3
TARGET_WARM_S = 60.0


def sources() -> LabSources:
    folder = equipment.CONTROL_PLANE
    return LabSources(
        controller=folder / "controller",
        policy_controller=folder / "linkerd-policy-controller",
        proxy_identity=folder / "proxy-identity",
        proxy=common.proxy(),
        linkerd=folder / "linkerd",
    )


def timed_up(folder: Path) -> float:
    start = time.monotonic()
    lab_up(folder=folder, sources=sources(), crds=(equipment.LINKERD_CRDS.read_text(),), name=NAME)
    return time.monotonic() - start


def lab_memory_mb() -> float:
    """Resident memory of every lab container (cgroup usage less page cache)."""
    total = 0.0
    for found in lab_containers.labelled_containers(LABEL, NAME):
        stats = docker_engine.client().containers.get(found["name"]).stats(stream=False)
        memory = stats["memory_stats"]
        cache = memory.get("stats", {}).get("inactive_file", 0)
        total += (memory["usage"] - cache) / 2**20
    return total


def first_mtls_answer(folder: Path) -> float:
    """From `run` of face (smiley and color already in) to its first healthy answer."""
    settings = common.settings()
    images = {
        name: build_workload_image(workload=find_workload(name), settings=settings).reference
        for name in ("smiley", "color", "face")
    }
    from builder.lab import Lab

    lab = Lab.load(folder)
    for name in ("smiley", "color"):
        run_in_lab(
            lab=lab,
            workload=find_workload(name),
            settings=settings,
            manifests_dir=folder / "manifests",
            image=images[name],
            name=f"{NAME}-{name}",
        )
    start = time.monotonic()
    face = run_in_lab(
        lab=lab,
        workload=find_workload("face"),
        settings=settings,
        manifests_dir=folder / "manifests",
        image=images["face"],
        name=f"{NAME}-face",
        env={
            "SMILEY_SERVICE": "smiley.faces.svc.cluster.local:8000",
            "COLOR_SERVICE": "color.faces.svc.cluster.local:8000",
        },
    )
    while time.monotonic() - start < 60:
        try:
            with urllib.request.urlopen(f"http://{face.ip}:8000/", timeout=5) as answer:
                if "errors" not in json.loads(answer.read()):
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("face gave no healthy answer within 60 s")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-lab-") as scratch:
        folder = Path(scratch)
        try:
            if docker_engine.image_exists(RUNTIME_IMAGE):
                docker_engine.remove_image(RUNTIME_IMAGE)
            cold = timed_up(folder)
            warm = []
            for _ in range(WARM_RUNS):
                lab_down(name=NAME, folder=folder)
                warm.append(timed_up(folder))
            to_answer = first_mtls_answer(folder)
            memory = lab_memory_mb()
        finally:
            lab_down(name=NAME, folder=folder)
    median = statistics.median(warm)
    figures = [
        common.Figure(
            f"lab up, warm (median of {WARM_RUNS})",
            median,
            "s",
            f"< {TARGET_WARM_S:.0f} s",
            median < TARGET_WARM_S,
        ),
        common.Figure("lab up, cold (lab runtime image built first)", cold, "s", "reported", None),
        common.Figure("run face to its first answer over mTLS", to_answer, "s", "reported", None),
        common.Figure(
            "resident memory of the whole lab (API server, etcd, control plane, DNS)",
            memory,
            "MB",
            "reported",
            None,
        ),
    ]
    common.save("lab", figures, {"warm_s": warm, "cold_s": cold, "memory_mb": memory})


if __name__ == "__main__":
    main()
