"""Registration by identity at scale: meshexp-registrar (builder/registration/service.py)
against the real API server the project builds, with N workloads (50 and 500)
heartbeating through its API every group period.

The identity path (each workload's own proxy asserting `l5d-client-id`) is proven in
the mesh lab at small N (tests/integration/test_registration_service.py); here the
heartbeats come straight to the service's API with that header set, so that 500
workloads fit on one machine. Measured over a window of idle heartbeats: the
service's CPU (share of one core), resident memory, and API writes per minute
(target: near zero, at most 1 per minute for 500 workloads); then with one workload
in ten reporting a failing probe each round (every change is one write).
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from lightkube.generic_resource import create_namespaced_resource

from bench import common
from bench.keeper import rss_mb, ticks
from builder.cluster import kube
from builder.cluster.apiserver import local_apiserver
from builder.registration import install, service
from harness import equipment

SIZES = (50, 500)
PERIOD = 10  # seconds between one workload's heartbeats (the group's)
WINDOW_S = 60.0
IDLE_WRITES_TARGET = 1.0  # API writes per minute, for 500 idle workloads
TD = "root.linkerd.cluster.local"


def identity(index: int) -> str:
    return f"spiffe://{TD}/ns/faces/externalworkload/w-{index}"


def address(index: int) -> str:
    return f"10.0.{index // 250}.{index % 250 + 1}"


def heartbeat(port: int, index: int, ready: bool = True) -> int:
    body = json.dumps({"addresses": [address(index)], "ready": ready})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "PUT",
            "/v1/namespaces/faces/groups/fleet/registration",
            body,
            {"l5d-client-id": identity(index), "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def writes(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return int(text.split("meshexp_registrar_api_writes_total ")[1].split()[0])


def rounds(port: int, size: int, pool: Any, failing_every: int = 0) -> dict[str, float]:
    """Heartbeats for WINDOW_S, each workload once a PERIOD, spread over the period; the
    service's CPU share and writes per minute over the window."""
    start_writes, start = writes(port), time.monotonic()
    round_number = 0
    while time.monotonic() - start < WINDOW_S:
        began = time.monotonic()
        flips = {
            i for i in range(size) if failing_every and (i + round_number) % failing_every == 0
        }
        statuses = list(
            pool.map(heartbeat, [port] * size, range(size), [i not in flips for i in range(size)])
        )
        if set(statuses) != {200}:
            raise RuntimeError(f"heartbeats answered {sorted(set(statuses))}")
        round_number += 1
        time.sleep(max(0.0, PERIOD - (time.monotonic() - began)))
    minutes = (time.monotonic() - start) / 60
    return {"writes_per_minute": (writes(port) - start_writes) / minutes}


def measured(server_process: subprocess.Popen[bytes], port: int, size: int) -> dict[str, float]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        began = time.monotonic()
        statuses = list(pool.map(lambda i: heartbeat(port, i), range(size)))
        if set(statuses) != {200}:
            raise RuntimeError(f"registrations answered {sorted(set(statuses))}")
        registered_s = time.monotonic() - began
        before, start = ticks(server_process.pid), time.monotonic()
        idle = rounds(port, size, pool)
        cpu = (ticks(server_process.pid) - before) / (time.monotonic() - start)
        rss = rss_mb(server_process.pid)
        churn = rounds(port, size, pool, failing_every=10)
    result = {
        "registered_per_s": size / registered_s,
        "idle_writes_per_minute": idle["writes_per_minute"],
        "idle_cpu_share": cpu,
        "rss_mb": rss,
        "churn_writes_per_minute": churn["writes_per_minute"],
    }
    print(f"  {size} workloads: {result}", flush=True)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def credentials(kubeconfig: Path, folder: Path) -> list[str]:
    """The service's flags for the API server in `kubeconfig` (its admin token here)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ca, token = folder / "ca.crt", folder / "token"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    token.touch(mode=0o600)
    token.write_text(user["token"])
    return ["--server", cluster["server"], "--ca", str(ca), "--token-file", str(token)]


def group() -> dict[str, Any]:
    spec = {
        "workload": "fleet",
        "names": ["w-*"],
        "networks": ["10.0.0.0/8"],
        "ports": [{"name": "http", "port": 8080}],
        "heartbeat": {"periodSeconds": PERIOD, "failureThreshold": 3, "graceSeconds": 600},
    }
    return install.group_document("fleet", "faces", spec)


def main() -> None:
    create_namespaced_resource(
        service.API_GROUP, service.API_VERSION, "RegistrationGroup", service.GROUP_PLURAL
    )
    crds = (equipment.LINKERD_CRDS.read_text(), yaml.safe_dump(install.crd_document()))
    data: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-regsvc-") as scratch:
        root = Path(scratch)
        for size in SIZES:
            with local_apiserver(folder=root / f"apiserver-{size}", crds=crds) as server:
                client = kube.connect(server.kubeconfig)
                kube.ensure_namespace(client, "faces")
                kube.apply_documents(client, [group()])
                port = free_port()
                flags = credentials(server.kubeconfig, root)
                process = subprocess.Popen(
                    [sys.executable, service.__file__, "--listen", f"127.0.0.1:{port}", *flags],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    deadline = time.monotonic() + 30
                    while True:
                        try:
                            writes(port)
                            break
                        except OSError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.2)
                    data[str(size)] = measured(process, port, size)
                finally:
                    process.terminate()
                    process.wait(timeout=10)
    largest = data[str(max(SIZES))]
    figures = [
        common.at_most(
            f"API writes per minute, {max(SIZES)} workloads heartbeating, nothing changing",
            largest["idle_writes_per_minute"],
            "/min",
            IDLE_WRITES_TARGET,
        )
    ]
    for count, row in data.items():
        figures += [
            common.reported(
                f"{count} workloads: registrations per second", row["registered_per_s"], "/s"
            ),
            common.reported(
                f"{count} workloads: the service's CPU while idle heartbeats arrive",
                row["idle_cpu_share"] * 100,
                "% of a core",
            ),
            common.reported(
                f"{count} workloads: the service's resident memory", row["rss_mb"], "MB"
            ),
            common.reported(
                f"{count} workloads, one in ten flipping its probe each round: API writes",
                row["churn_writes_per_minute"],
                "/min",
            ),
        ]
    common.save("registration_service", figures, data)


if __name__ == "__main__":
    main()
