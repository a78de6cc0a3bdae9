"""Shared parts of the benchmarks: settings, figures with targets, results, the report."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.gobuild import go_version
from builder.cluster.certs import create_certs
from builder.config.settings import Settings, load_settings
from builder.engine import docker_engine
from harness import equipment

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
IMAGE_NAME = "meshexp-bench/{workload}"
RESULTS.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Figure:
    """One measured figure, its target and whether it meets it."""

    name: str
    value: float
    unit: str
    target: str
    met: bool | None  # None: reported without a target

    def line(self) -> str:
        verdict = {True: "PASS", False: "FALL SHORT", None: "INFO"}[self.met]
        return f"{verdict:<10} {self.name}: {self.value:.2f} {self.unit} (target {self.target})"


def at_most(name: str, value: float, unit: str, target: float) -> Figure:
    """A figure whose target is an upper bound."""
    return Figure(name, value, unit, f"<= {target} {unit}", value <= target)


def reported(name: str, value: float, unit: str) -> Figure:
    """A figure reported without a target."""
    return Figure(name, value, unit, "reported", None)


def spread(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "stdev": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "n": float(len(ordered)),
    }


def machine() -> dict[str, Any]:
    info = docker_engine.engine_info()
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return {
        "cpus": os.cpu_count(),
        "memory_kib": int(memory),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "go": go_version(),
        "docker": info.version,
        "storage_driver": info.storage_driver,
        "meshexp_build": __version__,
        "proxy": "real linkerd2-proxy" if equipment.proxy_for_tests()[1] else "stand-in",
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


def proxy() -> Path:
    """The real proxy wherever it exists (PROXY_FILE, or the shared test equipment)."""
    return equipment.proxy_for_tests()[0]


def settings(**changes: Any) -> Settings:
    base = load_settings(None, {"offline": True, "proxy_file": proxy()})
    return base.with_(**{"image_name": IMAGE_NAME, **changes}).check()


def certs(into: Path) -> Path:
    folder = into / "certs"
    if not (folder / "issuer.key").exists():
        create_certs(folder=folder)
    return folder


def save(name: str, figures: list[Figure], data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": [asdict(figure) for figure in figures],
        "data": data,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    for figure in figures:
        print(figure.line(), flush=True)
    return path


PRODUCTION_SERVER = "bench-spire"
PRODUCTION_ENV = {
    "SPIRE_SERVER_ADDRESS": PRODUCTION_SERVER,
    "SPIRE_JOIN_TOKEN_FILE": "/opt/spire/certs/join-token",
}


def production_setup(network: str, certs: Path) -> tuple[str, Settings]:
    """Build the agent-only smiley and start an external SPIRE server with its entries."""
    from builder.build.image import build_workload_image
    from builder.cluster.spire_server import build_server_image, register, start_server
    from builder.config.catalog import find_workload

    prod = settings(topology="production", image_name="meshexp-bench/prod-{workload}")
    image = build_workload_image(workload=find_workload("smiley"), settings=prod)
    build_server_image(settings=prod, on_line=lambda line: None)
    start_server(settings=prod, network=network, name=PRODUCTION_SERVER, certs=certs)
    register(
        server=PRODUCTION_SERVER,
        settings=prod,
        workloads=[find_workload("smiley")],
        tokens_dir=None,
    )
    return image.reference, prod


def production_certs(certs: Path, folder: Path, prod: Settings) -> Path:
    """A copy of `certs` with a fresh single-use join token, for one production start."""
    import shutil

    from builder.cluster.spire_server import new_join_token

    shutil.copytree(certs, folder)
    new_join_token(
        server=PRODUCTION_SERVER, settings=prod, name="smiley", target=folder / "join-token"
    )
    return folder
