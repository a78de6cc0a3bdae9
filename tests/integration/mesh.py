"""Helpers to run meshexp images the way the field does, and to look at them from outside."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

READY_LINE = "bootstrap: workload started"
START_TIMEOUT = 120  # seconds; generous for a loaded 2-core machine


def workload_container(
    image: str,
    network: str,
    certs: Path | None,
    *,
    env: dict[str, str] | None = None,
    caps: tuple[str, ...] = ("NET_ADMIN",),
    name: str | None = None,
) -> DockerContainer:
    container = DockerContainer(image)
    container.with_kwargs(network=network, cap_add=list(caps), init=False)
    if certs is not None:
        container.with_volume_mapping(str(certs), "/opt/spire/certs", "ro")
    for key, value in (env or {}).items():
        container.with_env(key, value)
    if name:
        container.with_name(name)
    return container


@contextmanager
def running(container: DockerContainer) -> Iterator[DockerContainer]:
    """Start, wait for the bootstrap's 'workload started' line, always remove."""
    container.waiting_for(LogMessageWaitStrategy(READY_LINE).with_startup_timeout(START_TIMEOUT))
    try:
        container.start()
    except Exception as exc:
        wrapped = container.get_wrapped_container()
        logs = wrapped.logs().decode(errors="replace") if wrapped else "(no container)"
        container.stop()
        raise AssertionError(
            f"the container did not come up: {exc}\n--- logs ---\n{logs}"
        ) from None
    try:
        yield container
    finally:
        container.stop()


def exit_of(container: DockerContainer, timeout: float = START_TIMEOUT) -> tuple[int, str]:
    """Start a container that should fail; return its exit code and its whole log."""
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        logs = wrapped.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(status["StatusCode"]), logs
    finally:
        container.stop()


def ip_of(container: DockerContainer, network: str) -> str:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return str(wrapped.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def http_get(ip: str, port: int, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_http(ip: str, port: int, path: str, want: int = 200, timeout: float = 60) -> float:
    """Poll until `path` answers `want`; return the seconds it took."""
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        try:
            status, _ = http_get(ip, port, path, timeout=3)
            if status == want:
                return time.monotonic() - start
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"http://{ip}:{port}{path} did not answer {want} in {timeout}s ({last})")


def tcp_open_total(ip: str, direction: str) -> int:
    """Sum of the proxy's tcp_open_total counter for one direction."""
    _, text = http_get(ip, 4191, "/metrics")
    total = 0
    for line in text.splitlines():
        if line.startswith("tcp_open_total{") and f'direction="{direction}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def exec_in(container: DockerContainer, command: list[str], user: str = "0") -> tuple[int, str]:
    result = container.get_wrapped_container().exec_run(command, user=user)
    return int(result.exit_code), result.output.decode(errors="replace")


def uid_of_processes(container: DockerContainer) -> dict[str, int]:
    """Command name -> UID for every process in the container (no ps in the image)."""
    code, out = exec_in(
        container,
        [
            "bash",
            "-c",
            'for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; '
            'c=$(tr "\\0" " " <"$p/cmdline" 2>/dev/null) || continue; '
            '[ -n "$c" ] && echo "$(stat -c %u "$p") $c"; done',
        ],
    )
    assert code == 0, out
    found = {}
    for line in out.splitlines():
        uid, command = line.split(" ", 1)
        name = re.split(r"\s", command.strip())[0].rsplit("/", 1)[-1]
        if name not in ("bash", "tr", "stat") or "bootstrap" in command:
            found[("bootstrap" if "bootstrap" in command else name)] = int(uid)
    return found


def proxy_environment(container: DockerContainer) -> dict[str, str]:
    """The environment of the running proxy, read as the proxy's own UID (root may not)."""
    script = (
        "for p in /proc/[0-9]*; do "
        'if [ "$(tr -d "\\0" <"$p/cmdline" 2>/dev/null)" = /usr/lib/linkerd/linkerd2-proxy ];'
        ' then tr "\\0" "\\n" <"$p/environ"; exit 0; fi; done; exit 1'
    )
    code, out = exec_in(container, ["bash", "-c", script], user="2102")
    assert code == 0, f"no proxy process found: {out}"
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
