"""Time to ready: from `docker start` to the proxy's /ready answering 200.

At least 10 starts for each topology. The baseline is the original demo's
bootstrap, which sleeps 10 s and then 20 s before the proxy even starts: a
floor of 30 s that no start of it can beat.
"""

from __future__ import annotations

import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import common
from builder.build.image import build_workload_image
from builder.config.catalog import find_workload
from builder.engine import docker_engine

STARTS = 10
DEMO_FLOOR = 30.0
TARGET = 3.0
NETWORK = "meshexp-bench"


def ready_after_start(name: str) -> float:
    """docker start, then poll /ready every 50 ms; seconds from start to 200."""
    container = docker_engine.client().containers.get(name)
    begin = time.monotonic()
    container.start()
    ip = docker_engine.container_ip(name, NETWORK)
    while time.monotonic() - begin < 120:
        try:
            with urllib.request.urlopen(f"http://{ip}:4191/ready", timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - begin
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready in 120 s:\n{docker_engine.container_logs(name)[-2000:]}")


def create(image: str, name: str, certs: Path, env: dict[str, str]) -> None:
    docker_engine.remove_container(name)
    docker_engine.client().containers.create(
        image,
        name=name,
        network=NETWORK,
        cap_add=["NET_ADMIN", "NET_RAW"],
        environment=env,
        volumes={str(certs): {"bind": "/opt/spire/certs", "mode": "ro"}},
    )


def measure(scratch: Path) -> dict[str, list[float]]:
    certs = common.certs(scratch)
    docker_engine.remove_network(NETWORK)
    docker_engine.create_network(NETWORK)
    samples: dict[str, list[float]] = {"demo": [], "production": []}
    try:
        demo = build_workload_image(workload=find_workload("smiley"), settings=common.settings())
        for index in range(STARTS):
            create(demo.reference, "bench-ready-demo", certs, {})
            samples["demo"].append(ready_after_start("bench-ready-demo"))
            print(f"  demo start {index + 1}: {samples['demo'][-1]:.2f} s", flush=True)
        docker_engine.remove_container("bench-ready-demo")

        prod_image, prod = common.production_setup(NETWORK, certs)
        for index in range(STARTS):
            folder = common.production_certs(certs, scratch / f"prod-{index}", prod)
            create(prod_image, "bench-ready-prod", folder, common.PRODUCTION_ENV)
            samples["production"].append(ready_after_start("bench-ready-prod"))
            print(f"  production start {index + 1}: {samples['production'][-1]:.2f} s", flush=True)
    finally:
        docker_engine.remove_network(NETWORK)
    return samples


def plot(samples: dict[str, list[float]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for row, (topology, values) in enumerate(samples.items()):
        ax.scatter(values, [row] * len(values), alpha=0.6, label=f"meshexp {topology}")
    ax.axvline(DEMO_FLOOR, color="red", linestyle="--", label="original demo: 30 s floor")
    ax.axvline(TARGET, color="green", linestyle=":", label="target: 3 s median")
    ax.set_yticks(range(len(samples)), list(samples))
    ax.set_xlabel("seconds from docker start to /ready = 200")
    ax.set_xlim(0, DEMO_FLOOR + 2)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-") as scratch:
        samples = measure(Path(scratch))
    stats = {topology: common.spread(values) for topology, values in samples.items()}
    figures = []
    for topology in samples:
        median = stats[topology]["median"]
        figures.append(
            common.at_most(
                f"time to ready, {topology} topology (median of {STARTS})", median, "s", TARGET
            )
        )
        figures.append(
            common.Figure(
                f"original demo's floor / our median ({topology})",
                DEMO_FLOOR / median,
                "x",
                "reported",
                None,
            )
        )
    plot(samples, common.RESULTS / "time_to_ready.png")
    common.save(
        "time_to_ready", figures, {"samples": samples, "stats": stats, "demo_floor_s": DEMO_FLOOR}
    )


if __name__ == "__main__":
    main()
