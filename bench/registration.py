"""`register`: from a plain `docker run` to a registered, Ready ExternalWorkload; from a
failing probe to Ready False; and what the registrar costs (resident memory, CPU) for
10 and 50 containers. Against the real API server the project builds, with the
smiley image (the real proxy) started by the walk-through's own `docker run` line.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.keeper import rss_mb, ticks, wait_condition
from builder.build.image import build_workload_image
from builder.cluster import kube
from builder.cluster.apiserver import local_apiserver
from builder.config.catalog import find_workload
from builder.engine import docker_engine
from harness import equipment
from harness.registration import refuse_probe

NETWORK = "meshexp-bench-register"
STARTS = 5
FAILURES = 3
SIZES = (10, 50)
WINDOW_S = 30.0
# smiley's probe (images/smiley.yaml): every 10 s, timeout 1 s, 3 failures in a row:
# Kubernetes would take at most period x (threshold + 1) plus the timeouts.
PROBE_TARGET_S = 10 * (3 + 1) + 3 * 1
START_TARGET_S = 10.0


def docker_run(image: str, name: str, certs: Path) -> None:
    """The walk-through's line: docker run -d --name NAME --network N --cap-add NET_ADMIN
    -v certs:/opt/spire/certs:ro -e WORKLOAD_NAME=smiley -e WORKLOAD_NAMESPACE=faces IMAGE"""
    docker_engine.remove_container(name)
    docker_engine.client().containers.run(
        image,
        name=name,
        detach=True,
        network=NETWORK,
        cap_add=["NET_ADMIN"],
        volumes={str(certs): {"bind": "/opt/spire/certs", "mode": "ro"}},
        environment={"WORKLOAD_NAME": "smiley", "WORKLOAD_NAMESPACE": "faces"},
    )


def cost(registrar: subprocess.Popen[bytes]) -> tuple[float, float]:
    """The registrar's share of one core over WINDOW_S, and its resident memory."""
    before, start = ticks(registrar.pid), time.monotonic()
    time.sleep(WINDOW_S)
    return (ticks(registrar.pid) - before) / (time.monotonic() - start), rss_mb(registrar.pid)


def main() -> None:
    image = build_workload_image(workload=find_workload("smiley"), settings=common.settings())
    data: dict[str, Any] = {}
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-register-") as scratch:
        root = Path(scratch)
        certs = common.certs(root)
        crds = (equipment.LINKERD_CRDS.read_text(),)
        docker_engine.remove_network(NETWORK)
        docker_engine.create_network(NETWORK)
        with local_apiserver(folder=root / "apiserver", crds=crds) as server:
            client = kube.connect(server.kubeconfig)
            registrar = subprocess.Popen(
                [
                    *(sys.executable, "-m", "builder.cli", "register"),
                    *("--kubeconfig", str(server.kubeconfig), "--id", "bench"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                starts = []
                for index in range(STARTS):
                    name = f"smiley-{index}"
                    began = time.monotonic()
                    docker_run(image.reference, name, certs)
                    names.append(name)
                    starts.append(
                        time.monotonic() - began + wait_condition(client, name, "True", 120)
                    )
                failures = []
                for index in range(FAILURES):
                    name = names[index]
                    refuse_probe(name, add=True)
                    failures.append(wait_condition(client, name, "False", 120))
                    refuse_probe(name, add=False)
                    wait_condition(client, name, "True", 60)
                for size in SIZES:
                    while len(names) < size:
                        names.append(f"smiley-{len(names)}")
                        docker_run(image.reference, names[-1], certs)
                    for name in names:
                        wait_condition(client, name, "True", 600)
                    data[f"cost_{size}"] = cost(registrar)
            finally:
                registrar.send_signal(signal.SIGTERM)
                registrar.wait(timeout=30)
                for name in names:
                    docker_engine.remove_container(name)
                docker_engine.remove_network(NETWORK)
    data.update(starts_s=starts, probe_failures_s=failures)
    started, failed = statistics.median(starts), statistics.median(failures)
    figures = [
        common.Figure(
            f"docker run -> registered and Ready (median of {STARTS})",
            started,
            "s",
            f"<= {START_TARGET_S:.0f} s",
            started <= START_TARGET_S,
        ),
        common.Figure(
            f"probe fails -> Ready False (median of {FAILURES})",
            failed,
            "s",
            f"<= {PROBE_TARGET_S} s (Kubernetes' window for the same probe)",
            failed <= PROBE_TARGET_S,
        ),
    ]
    for size in SIZES:
        share, memory = data[f"cost_{size}"]
        figures += [
            common.Figure(
                f"registrar CPU, {size} containers (share of one core over {WINDOW_S:.0f} s)",
                100 * share,
                "%",
                "reported",
                None,
            ),
            common.Figure(
                f"registrar resident memory, {size} containers", memory, "MB", "reported", None
            ),
        ]
    common.save("registration", figures, data)


if __name__ == "__main__":
    main()
