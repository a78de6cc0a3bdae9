"""Run Faces programs (upstream's or ours) as plain containers and talk to them.

Each program runs alone in a container of the offline base, the binary mounted
read-only, as nobody: upstream's serve metrics on a fixed :9090, so one per
network namespace. Answers are reduced to what both implementations must agree
on: the per-connection client address is dropped, nothing else.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.check import grpcwire
from builder.check.listings import metric_series
from builder.core.wait import NotYet, TimedOut, until

PORT = 8000
METRICS_PORT = 9090
CLIENT_ADDRESS = re.compile(r'"client_address":"[^"]*"')


@dataclass
class Program:
    container: Any  # docker Container
    ip: str

    def logs(self) -> str:
        return str(self.container.logs().decode(errors="replace"))

    def stop(self) -> None:
        self.container.remove(force=True)


def wait_port(ip: str, port: int, container: Any, timeout: float = 60) -> None:
    def listening() -> bool | NotYet:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((ip, port)) == 0:
                return True
        container.reload()
        if container.status == "exited":
            return False
        return NotYet(f"nothing listens on {ip}:{port}")

    with contextlib.suppress(TimedOut):
        if until(listening, timeout=timeout, interval=0.1):
            return
    logs = container.logs().decode(errors="replace")
    raise AssertionError(f"{container.name} does not listen on {ip}:{port}: {logs[-2000:]}")


def start(
    engine: Any, base: str, network: str, binary: Path, name: str, env: dict[str, str]
) -> Program:
    """Start one Faces program on PORT and wait until it and its metrics listen."""
    container = engine.containers.run(
        base,
        [f"/faces/{name}", "-port", str(PORT)],
        name=f"faces-{name}-{uuid.uuid4().hex[:8]}",
        network=network,
        hostname="faces",  # the same HOSTNAME (X-Faces-Pod) and metrics label for both
        user="65534",
        environment=env,
        volumes={str(binary): {"bind": f"/faces/{name}", "mode": "ro"}},
        detach=True,
    )
    container.reload()
    ip = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    for port in (PORT, METRICS_PORT):
        wait_port(ip, port, container)
    return Program(container, ip)


def scrub(value: Any) -> Any:
    """Drop client addresses (they differ per connection), also inside error texts."""
    if isinstance(value, str):
        return CLIENT_ADDRESS.sub('"client_address":"-"', value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k != "client_address"}
    return value


def http_call(
    ip: str,
    method: str,
    path: str,
    headers: dict[str, str],
    user_header: str = "X-Faces-User",
    expect_json: bool = True,
) -> dict[str, Any]:
    """One HTTP/1 request; the status, the headers Faces sets, and the JSON body."""
    conn = http.client.HTTPConnection(ip, PORT, timeout=30)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        echoed = {
            name: resp.getheader(name)
            for name in ("Content-Type", "User-Agent", "X-Faces-Pod", user_header)
        }
    finally:
        conn.close()
    body = scrub(json.loads(raw)) if raw and expect_json else raw.decode(errors="replace")
    return {"status": resp.status, "headers": echoed, "body": body}


def grpc_call(
    ip: str, method: str, row: int, column: int, metadata: dict[str, str]
) -> dict[str, Any]:
    """One unary ColorService call; its gRPC status, message and decoded answers."""
    message = grpcwire.encode_message({1: row, 2: column})
    answer = grpcwire.call(ip, PORT, method, message, metadata, timeout=30)
    return {
        "kind": answer.kind,
        "grpc-status": answer.grpc_status,
        "grpc-message": answer.grpc_message,
        "answers": [color_response(m) for m in answer.messages],
    }


def color_response(message: bytes) -> dict[str, Any]:
    fields = grpcwire.decode_message(message)

    def texts(number: int) -> list[str]:
        return [v.decode() for v in fields.get(number, []) if isinstance(v, bytes)]

    return {"color": texts(1), "rate": texts(2), "errors": texts(3)}


def requests_total(ip: str) -> dict[tuple[str, str, str], float]:
    """requests_total from the program's own metrics, by (provider, key, status)."""
    conn = http.client.HTTPConnection(ip, METRICS_PORT, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {
        (labels["provider"], labels["key"], labels["status"]): value
        for labels, value in metric_series(text, "requests_total")
    }


CONFIG_LINE = re.compile(
    r'msg="(\w+: (?:userHeaderName|debug_enabled|delay_buckets|error_fraction|latch_fraction|'
    r"max_rate|Using)[^\"]*)\""
)


def config_lines(logs: str) -> list[str]:
    """The start-up lines that report how the environment was read."""
    return CONFIG_LINE.findall(logs)


def wait_for(condition: Any, timeout: float, every: float = 0.5) -> bool:
    """Poll `condition()` until it holds or `timeout` seconds pass; whether it held."""
    try:
        return until(
            lambda: True if condition() else NotYet("not yet"), timeout=timeout, interval=every
        )
    except TimedOut:
        return bool(condition())
