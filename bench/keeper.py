"""The status keeper: time from a container's death to `Ready: False`, and what the
keeper costs (resident memory, CPU) while it keeps 10 workloads, against the
real API server the project builds.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from builder.build.image import build_workload_image
from builder.cluster import kube
from builder.cluster.apiserver import local_apiserver
from builder.cluster.run import run_workload
from builder.config.catalog import find_workload
from builder.engine import docker_engine
from harness import equipment

NETWORK = "meshexp-bench-keeper"
WORKLOADS = 10
DEATHS = 5
TARGET_S = 5.0
WINDOW_S = 30.0


def ticks(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_condition(client: kube.KubeClient, name: str, status: str, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        found = kube.ready_condition(name, "faces", client)
        if found is not None and found["status"] == status:
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not turn Ready {status} within {limit}s")


def main() -> None:
    image = build_workload_image(workload=find_workload("smiley"), settings=common.settings())
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-keeper-") as scratch:
        root = Path(scratch)
        certs, manifests = common.certs(root), root / "manifests"
        crds = (equipment.LINKERD_CRDS.read_text(),)
        docker_engine.remove_network(NETWORK)
        with local_apiserver(folder=root / "apiserver", crds=crds) as server:
            client = kube.connect(server.kubeconfig)
            kube.ensure_namespace(client, "faces")
            names = [f"keeper-{index}" for index in range(WORKLOADS)]
            try:
                for name in names:
                    run_workload(
                        workload=find_workload("smiley"),
                        settings=common.settings(),
                        certs=certs,
                        network=NETWORK,
                        manifests_dir=manifests,
                        image=image.reference,
                        name=name,
                        env={"WORKLOAD_NAME": name},
                        kubeconfig=server.kubeconfig,
                        apply=True,
                    )
                keeper = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "builder.cli",
                        "keep-ready",
                        "--kubeconfig",
                        str(server.kubeconfig),
                        "--manifests",
                        str(manifests),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    for name in names:
                        wait_condition(client, name, "True", 60)
                    cpu_before, window_start = ticks(keeper.pid), time.monotonic()
                    time.sleep(WINDOW_S)
                    cpu_share = (ticks(keeper.pid) - cpu_before) / (time.monotonic() - window_start)
                    memory = rss_mb(keeper.pid)
                    deaths = []
                    for index in range(DEATHS):
                        name = names[index]
                        docker_engine.client().containers.get(name).kill()
                        deaths.append(wait_condition(client, name, "False", 60))
                finally:
                    keeper.send_signal(signal.SIGTERM)
                    keeper.wait(timeout=10)
            finally:
                for name in names:
                    docker_engine.remove_container(name)
                docker_engine.remove_network(NETWORK)
    median = statistics.median(deaths)
    figures = [
        common.Figure(
            f"container death to Ready: False (median of {DEATHS})",
            median,
            "s",
            f"<= {TARGET_S:.0f} s",
            median <= TARGET_S,
        ),
        common.Figure("  slowest of those", max(deaths), "s", "reported", None),
        common.Figure(
            f"keeper resident memory, {WORKLOADS} workloads", memory, "MB", "reported", None
        ),
        common.Figure(
            f"keeper CPU, {WORKLOADS} workloads (share of one core over {WINDOW_S:.0f} s)",
            100 * cpu_share,
            "%",
            "reported",
            None,
        ),
    ]
    common.save("keeper", figures, {"deaths_s": deaths, "rss_mb": memory, "cpu_share": cpu_share})


if __name__ == "__main__":
    main()
