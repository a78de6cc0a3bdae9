"""The one module that imports testcontainers: run an image the way the field does.

A MeshContainer is started on its own Docker network with NET_ADMIN (and
NET_RAW), the certificates mounted read-only at /opt/spire/certs, and the
workload's environment; it is ready when the bootstrap logs that the
workload started (a real wait strategy, no sleeps). Ryuk (testcontainers'
reaper) cannot be pulled where no registry is reachable, so every container
and network here is removed by its own context manager.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from builder.core.errors import CheckError
from builder.engine import docker_engine

READY_LINE = "bootstrap: workload started"
CERTS_PATH = "/opt/spire/certs"


@dataclass
class MeshContainer:
    """A started workload container and what a check needs to reach it."""

    inner: DockerContainer
    network: str
    started_at: float
    logs_at_failure: str = field(default="")

    @property
    def ip(self) -> str:
        wrapped = self.inner.get_wrapped_container()
        wrapped.reload()
        return str(wrapped.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"])

    def exec(self, command: list[str], user: str = "0") -> tuple[int, str]:
        result = self.inner.get_wrapped_container().exec_run(command, user=user)
        return int(result.exit_code), result.output.decode(errors="replace")

    def logs(self) -> str:
        return str(self.inner.get_wrapped_container().logs().decode(errors="replace"))

    def stop_timed(self, timeout: int = 10) -> tuple[float, int]:
        """`docker stop` (SIGTERM, then SIGKILL after `timeout`); seconds taken, exit code."""
        wrapped = self.inner.get_wrapped_container()
        start = time.monotonic()
        wrapped.stop(timeout=timeout)
        wrapped.reload()
        return time.monotonic() - start, int(wrapped.attrs["State"]["ExitCode"])

    def restart(self, timeout: float) -> None:
        wrapped = self.inner.get_wrapped_container()
        wrapped.restart(timeout=10)
        wait_for_log_count(self, READY_LINE, 2, timeout)


def wait_for_log_count(container: MeshContainer, line: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while container.logs().count(line) < count:
        wrapped = container.inner.get_wrapped_container()
        wrapped.reload()
        if wrapped.status not in ("running", "created", "restarting"):
            raise CheckError(
                f"the container exited (status {wrapped.status}) before logging "
                f"{line!r}:\n{container.logs()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise CheckError(f"no {line!r} within {timeout:.0f}s:\n{container.logs()[-3000:]}")
        time.sleep(0.25)


@contextlib.contextmanager
def own_network() -> Iterator[str]:
    """A bridge network of its own, removed afterwards with anything left on it."""
    name = f"meshexp-check-{uuid.uuid4().hex[:10]}"
    docker_engine.create_network(name)
    try:
        yield name
    finally:
        docker_engine.remove_network(name)


def configure(
    image: str,
    network: str,
    certs: Path | None,
    env: dict[str, str],
    caps: tuple[str, ...],
    name: str | None = None,
) -> DockerContainer:
    container = DockerContainer(image)
    kwargs: dict[str, Any] = {"network": network, "cap_add": list(caps)}
    container.with_kwargs(**kwargs)
    if certs is not None:
        container.with_volume_mapping(str(certs.resolve()), CERTS_PATH, "ro")
    for key, value in env.items():
        container.with_env(key, value)
    if name:
        container.with_name(name)
    return container


@contextlib.contextmanager
def mesh_container(
    *,
    image: str,
    network: str,
    certs: Path | None,
    env: dict[str, str],
    caps: tuple[str, ...] = ("NET_ADMIN", "NET_RAW"),
    timeout: float = 120,
    name: str | None = None,
) -> Iterator[MeshContainer]:
    """Start a workload image and wait for the bootstrap's 'workload started' line."""
    container = configure(image, network, certs, env, caps, name)
    container.waiting_for(LogMessageWaitStrategy(READY_LINE).with_startup_timeout(int(timeout)))
    started_at = time.monotonic()
    try:
        container.start()
    except Exception as exc:
        wrapped = container.get_wrapped_container()
        logs = wrapped.logs().decode(errors="replace") if wrapped is not None else ""
        with contextlib.suppress(Exception):
            container.stop()
        raise CheckError(
            f"{image} did not come up: {exc}\n--- container log ---\n{logs[-4000:]}"
        ) from None
    try:
        yield MeshContainer(container, network, started_at)
    finally:
        with contextlib.suppress(Exception):
            container.stop()


def run_to_exit(
    *,
    image: str,
    network: str,
    certs: Path | None,
    env: dict[str, str],
    caps: tuple[str, ...] = ("NET_ADMIN", "NET_RAW"),
    timeout: float = 120,
    entrypoint: list[str] | None = None,
) -> tuple[int, str, float]:
    """Run a container until it exits; its exit code, whole log and seconds taken."""
    container = configure(image, network, certs, env, caps)
    if entrypoint:
        container.with_kwargs(network=network, cap_add=list(caps), entrypoint=entrypoint)
    start = time.monotonic()
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        logs = wrapped.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(status["StatusCode"]), logs, time.monotonic() - start
    finally:
        with contextlib.suppress(Exception):
            container.stop()
