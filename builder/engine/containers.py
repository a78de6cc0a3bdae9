"""The one module that imports testcontainers: run an image the way the field does.

A MeshContainer is started on its own Docker network (a testcontainers Network)
with NET_ADMIN (and NET_RAW), the certificates mounted read-only at
/opt/spire/certs, and the workload's environment; it is ready when the
bootstrap logs that the workload started (testcontainers' log wait strategy,
no sleeps). Ryuk (testcontainers' reaper) cannot be pulled where no registry
is reachable, so it is turned off in testcontainers' config before a start,
and every container and network here is removed by its own context manager.

Where testcontainers has no equivalent, docker_engine (docker-py) does the
work, each place saying which: the address on a named network, the log with
stdout and stderr interleaved, a graceful `docker stop`, restart, and waiting
for an exit with a time limit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import docker.types
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer, ExecConfig
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from builder.core import image_contract
from builder.core.errors import CheckError
from builder.engine import docker_engine

CERTS_PATH = "/opt/spire/certs"


@dataclass
class MeshContainer:
    """A started workload container and what a check needs to reach it."""

    inner: DockerContainer
    network: str
    started_at: float
    logs_at_failure: str = field(default="")

    @property
    def id(self) -> str:
        return self.inner.get_container_id()

    @property
    def ip(self) -> str:
        # docker-py: testcontainers gives the bridge's address only, not a named network's.
        return docker_engine.container_ip(self.id, self.network)

    def exec(self, command: list[str], user: str = "0") -> tuple[int, str]:
        result = self.inner.exec(
            ExecConfig(command=command, user=user, environment=image_contract.EXEC_ENVIRONMENT)
        )
        return -1 if result.exit_code is None else int(result.exit_code), result.output.decode(
            errors="replace"
        )

    def logs(self) -> str:
        # docker-py: testcontainers' get_logs() splits stdout from stderr, and the
        # bootstrap's story reads in the order it was told.
        return docker_engine.container_logs(self.id)

    def stop_timed(self, timeout: int = 10) -> tuple[float, int]:
        """`docker stop` (SIGTERM, then SIGKILL after `timeout`); seconds taken, exit code."""
        start = time.monotonic()
        # docker-py: testcontainers' stop() removes the container at once (SIGKILL).
        code = docker_engine.stop_container(self.id, timeout)
        return time.monotonic() - start, code

    def restart(self, timeout: float) -> None:
        docker_engine.restart_container(self.id)  # docker-py: testcontainers has no restart
        wait_for_log_count(self, image_contract.WORKLOAD_STARTED_LINE, 2, timeout)

    def wait_for_exit(self, timeout: float) -> int:
        # docker-py: testcontainers' wait() has no time limit.
        return docker_engine.wait_for_exit(self.id, timeout)


def wait_for_log_count(container: MeshContainer, line: str, count: int, timeout: float) -> None:
    """Until `line` has been logged `count` times; a CheckError if the container exits."""
    # One pattern for `count` occurrences: the strategy's own `times` is not counted (4.x).
    pattern = re.compile(r"[\s\S]*?".join([re.escape(line)] * count))
    strategy = LogMessageWaitStrategy(pattern).with_startup_timeout(int(timeout) or 1)
    try:
        strategy.with_poll_interval(0.25).wait_until_ready(container.inner)
    except RuntimeError:
        container.inner.reload()
        raise CheckError(
            f"the container exited (status {container.inner.status}) before logging "
            f"{line!r}:\n{container.logs()[-3000:]}"
        ) from None
    except TimeoutError:
        raise CheckError(
            f"no {line!r} within {timeout:.0f}s:\n{container.logs()[-3000:]}"
        ) from None


def _without_reaper() -> None:
    """Ryuk's image cannot be pulled offline; our context managers clean up instead."""
    testcontainers_config.ryuk_disabled = True


@contextlib.contextmanager
def own_network(ipv6: bool = False) -> Iterator[str]:
    """A bridge network of its own, removed afterwards with anything left on it; with
    `ipv6`, dual-stack (a random /64 of fd00::/8 beside an IPv4 subnet from Docker's
    pools) where the engine can make one, else IPv4 only."""
    _without_reaper()
    name = f"meshexp-check-{uuid.uuid4().hex[:10]}"
    network = created(name, dual_stack_options()) if ipv6 else None
    network = network or created(name, {})
    if network is None:
        raise CheckError(f"the engine could not create the check's network {name}")
    try:
        yield name
    finally:
        # A container a failed check left attached would make the network's own
        # remove() fail: docker_engine removes those first.
        for attached in docker_engine.network_containers(name):
            docker_engine.remove_container(attached)
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


def dual_stack_options() -> dict[str, object]:
    """docker-py's options for a dual-stack bridge: a random unique-local /64 (RFC 4193)."""
    prefix = (0xFD << 120) | (secrets.randbits(56) << 64)
    subnet = ipaddress.IPv6Network((prefix, 64))
    pool = docker.types.IPAMPool(subnet=str(subnet))
    return {"enable_ipv6": True, "ipam": docker.types.IPAMConfig(pool_configs=[pool])}


def created(name: str, options: dict[str, object]) -> Network | None:
    """A network made with docker-py's `options`, or None where the engine refuses them
    (IPv6 where its kernel has it off)."""
    network = Network(docker_network_kw=options)
    network.name = name
    try:
        return network.create()
    except docker.errors.APIError:
        return None


def configure(
    image: str,
    network: str,
    certs: Path | None,
    env: dict[str, str],
    caps: tuple[str, ...],
    name: str | None = None,
    entrypoint: list[str] | None = None,
) -> DockerContainer:
    """A container for `image` on network `network` (by name: it may be one the caller
    made, a lab's or a `run` network), with capabilities, certificates and env."""
    _without_reaper()
    container = DockerContainer(image).with_envs(**env)
    # No with_network(): that needs a Network testcontainers created; the network
    # here is named by the caller.
    extra: dict[str, object] = {"network": network, "cap_add": list(caps)}
    if entrypoint:
        extra["entrypoint"] = entrypoint
    container.with_kwargs(**extra)
    if certs is not None:
        container.with_volume_mapping(str(certs.resolve()), CERTS_PATH, "ro")
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
    container.waiting_for(
        LogMessageWaitStrategy(image_contract.WORKLOAD_STARTED_LINE).with_startup_timeout(
            int(timeout)
        )
    )
    started_at = time.monotonic()
    try:
        container.start()
    except Exception as exc:
        logs = _logs_of(container)
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


def _logs_of(container: DockerContainer) -> str:
    with contextlib.suppress(Exception):
        return docker_engine.container_logs(container.get_container_id())
    return ""


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
    container = configure(image, network, certs, env, caps, entrypoint=entrypoint)
    start = time.monotonic()
    container.start()
    try:
        # docker-py: testcontainers' wait() has no time limit.
        code = docker_engine.wait_for_exit(container.get_container_id(), timeout)
        return (
            code,
            docker_engine.container_logs(container.get_container_id()),
            (time.monotonic() - start),
        )
    finally:
        with contextlib.suppress(Exception):
            container.stop()
