"""Memory: resident memory of the whole container once ready, per process, both topologies."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import common
from bench.time_to_ready import NETWORK, create, ready_after_start
from builder.build.image import build_workload_image
from builder.check.listings import list_processes
from builder.config.catalog import find_workload
from builder.engine import docker_engine

TARGETS_MB = {"demo": 200.0, "production": 100.0}
SETTLE_S = 5.0  # after ready, let start-up allocations settle before reading


def rss_by_process(name: str) -> dict[str, float]:
    """Resident MB per process name in container `name` (the checks' own listing)."""
    found: dict[str, float] = {}
    for process in list_processes(lambda command, user: docker_engine.exec_in(name, command, user)):
        found[process.name] = found.get(process.name, 0.0) + process.rss_kib / 1024
    return found


def container_memory_mb(name: str) -> float:
    stats = docker_engine.client().containers.get(name).stats(stream=False)
    usage = stats["memory_stats"]
    cache = usage.get("stats", {}).get("total_inactive_file", 0)
    return float(usage["usage"] - cache) / 1e6


def main() -> None:
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-") as scratch:
        certs = common.certs(Path(scratch))
        docker_engine.remove_network(NETWORK)
        docker_engine.create_network(NETWORK)
        try:
            demo = build_workload_image(
                workload=find_workload("smiley"), settings=common.settings()
            )
            create(demo.reference, "bench-mem-demo", certs, {})
            ready_after_start("bench-mem-demo")
            time.sleep(SETTLE_S)
            results["demo"] = {
                "processes_mb": rss_by_process("bench-mem-demo"),
                "cgroup_mb": container_memory_mb("bench-mem-demo"),
            }
            prod_image, prod = common.production_setup(NETWORK, certs)
            folder = common.production_certs(certs, Path(scratch) / "prod", prod)
            create(prod_image, "bench-mem-prod", folder, common.PRODUCTION_ENV)
            ready_after_start("bench-mem-prod")
            time.sleep(SETTLE_S)
            results["production"] = {
                "processes_mb": rss_by_process("bench-mem-prod"),
                "cgroup_mb": container_memory_mb("bench-mem-prod"),
            }
        finally:
            docker_engine.remove_network(NETWORK)
    figures = []
    for topology, target in TARGETS_MB.items():
        processes = results[topology]["processes_mb"]
        assert isinstance(processes, dict)
        total = sum(processes.values())
        figures.append(
            common.Figure(
                f"resident memory, {topology} container (sum of RSS)",
                total,
                "MB",
                f"<= {target:.0f} MB",
                total <= target,
            )
        )
        for process, mb in sorted(processes.items(), key=lambda item: -item[1]):
            figures.append(common.Figure(f"  {topology}: {process}", mb, "MB", "reported", None))
    common.save("memory", figures, results)


if __name__ == "__main__":
    main()
