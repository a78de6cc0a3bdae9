"""The Docker engine through docker-py: every engine call but the lab's goes through here
(builder.engine.lab_containers has those; testcontainers is in builder.engine.containers).

Other modules get plain values back (ids, dicts, lines), never docker objects,
and every failure becomes an EngineError or BuildError that says what to do. It is
over 400 lines on purpose: it is the one place that knows docker-py.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from builder.core import image_contract, wait
from builder.core.errors import BuildError, EngineError

BUILD_LOG_TAIL = 25
# What a call through docker-py can raise beyond our own errors: the engine's refusals,
# and the connection's (the engine went away mid-call).
ENGINE_ERRORS: tuple[type[Exception], ...] = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
)
# How long a removal the engine already has in progress is waited for.
REMOVAL_WAIT_S = 60.0


def socket_hint() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    storage_driver: str
    architecture: str
    # "1" or "2" (the host's cgroup hierarchy, as the engine reports it).
    cgroup_version: str = "?"
    name: str = "?"  # the engine's host name


_CLIENT: list[Any] = []


def client() -> Any:
    """A docker-py client that answers, or an EngineError naming the socket tried."""
    if _CLIENT:
        return _CLIENT[0]
    try:
        engine = docker.from_env(timeout=600)
        engine.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(
            f"no Docker engine answers at {socket_hint()} ({exc.__class__.__name__}). Start one: "
            "`sudo scripts/ensure-docker.sh` (installs Debian's docker.io and starts dockerd), "
            "or `sudo systemctl start docker`, or set DOCKER_HOST"
        ) from None
    _CLIENT.append(engine)
    return engine


def engine_info() -> EngineInfo:
    info = client().info()
    version = client().version()
    return EngineInfo(
        version=version.get("Version", "?"),
        api_version=version.get("ApiVersion", "?"),
        storage_driver=info.get("Driver", "?"),
        architecture=info.get("Architecture", "?"),
        cgroup_version=str(info.get("CgroupVersion", "?")),
        name=str(info.get("Name", "?")),
    )


def image_exists(reference: str) -> bool:
    try:
        client().images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_attrs(reference: str) -> dict[str, Any]:
    """The engine's `inspect` of an image."""
    try:
        attrs: dict[str, Any] = client().images.get(reference).attrs
    except docker.errors.ImageNotFound:
        raise BuildError(
            f"image {reference} does not exist; build it first "
            "(meshexp-build image --workload NAME)"
        ) from None
    return attrs


def image_history(reference: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = client().images.get(reference).history()
    return history


def remove_image(reference: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client().images.remove(reference, force=True)


def remove_images_labelled(label: str, value: str) -> int:
    """Remove the images (a build's intermediate stages) carrying label=value; how many."""
    found = client().images.list(all=True, filters={"label": f"{label}={value}"})
    for image in found:
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client().images.remove(image.id, force=True)
    return len(found)


def import_rootfs(tarball: Path, reference: str, changes: list[str]) -> str:
    """`docker import` a root filesystem tarball and tag it."""
    repository, tag = reference.rsplit(":", 1)
    try:
        result = client().api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
    except docker.errors.APIError as exc:
        raise BuildError(f"docker import of {tarball} failed: {exc.explanation or exc}") from None
    if "error" in str(result).lower():
        raise BuildError(f"docker import of {tarball} failed: {result}")
    return str(client().images.get(reference).id)


def _stream_lines(chunks: Iterator[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for chunk in chunks:
        text = chunk.get("stream") or chunk.get("status") or ""
        for line in str(text).splitlines():
            if line.strip():
                yield line.rstrip(), chunk
        if "error" in chunk or "errorDetail" in chunk:
            yield "", chunk


def build_image(
    *,
    context: Path,
    tag: str,
    platform: str,
    pull: bool = False,
    nocache: bool = False,
    buildargs: dict[str, str] | None = None,
    on_line: Callable[[str], None] = lambda line: None,
) -> str:
    """Build `context` with the classic builder, streaming lines to `on_line`.

    On failure the BuildError carries the last build-log lines.
    """
    api = client().api
    tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL)
    image_id = ""
    try:
        chunks = api.build(
            path=str(context),
            tag=tag,
            platform=platform,
            rm=True,
            forcerm=True,
            pull=pull,
            nocache=nocache,
            buildargs=buildargs,
            decode=True,
        )
        for line, chunk in _stream_lines(chunks):
            if line:
                tail.append(line)
                on_line(line)
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
                raise BuildError(_build_failure(tag, message, tail))
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except docker.errors.APIError as exc:
        raise BuildError(_build_failure(tag, str(exc.explanation or exc), tail)) from None
    return image_id or str(client().images.get(tag).id)


def _build_failure(tag: str, message: str, tail: deque[str]) -> str:
    lines = "\n".join(f"  | {line}" for line in tail)
    hint = ""
    if "pull access denied" in message or "no such host" in message or "dial tcp" in message:
        hint = (
            "\nan image source could not be pulled: without registry access, build with "
            "--offline (Debian base, Go sources, and --proxy-file)"
        )
    return f"building {tag} failed: {message.strip()}\nlast build-log lines:\n{lines}{hint}"


def create_network(name: str) -> None:
    client().networks.create(name, driver="bridge")


def remove_network(name: str) -> None:
    """Remove a network and every container still attached to it (each as
    remove_container does: gone already, or going, is fine)."""
    for container in client().containers.list(all=True, filters={"network": name}):
        remove_container(container.id)
    with contextlib.suppress(docker.errors.NotFound):
        client().networks.get(name).remove()


def network_gateway(name: str) -> str:
    """The host's IPv4 address on a bridge network (where a host-side peer listens)."""
    configs = client().networks.get(name).attrs["IPAM"]["Config"] or []
    gateways = (str(config.get("Gateway") or "") for config in configs)
    found = next((g for g in gateways if g and ip_address(g).version == 4), "")
    if not found:
        raise EngineError(f"the Docker network {name} has no IPv4 gateway: give it an IPv4 subnet")
    return found


def network_subnet(name: str, version: int = 4) -> str:
    """The bridge network's subnet (CIDR) of one family, where its containers get their
    addresses of that family ("" where it has none)."""
    configs = client().networks.get(name).attrs["IPAM"]["Config"] or []
    subnets = (str(config.get("Subnet") or "") for config in configs)
    return next((s for s in subnets if s and ip_network(s).version == version), "")


def save_image(reference: str, target: Path) -> None:
    """`docker save` an image to a tar file (its layers, for scanning)."""
    with target.open("wb") as handle:
        for chunk in client().images.get(reference).save(named=True):
            handle.write(chunk)


def run_once(
    reference: str,
    command: list[str],
    *,
    network: str | None = None,
    entrypoint: str | list[str] | None = None,
    user: str | None = None,
    cap_add: list[str] | None = None,
    environment: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run a short-lived container to completion; exit code and output."""
    container = client().containers.run(
        reference,
        command,
        entrypoint=entrypoint,
        network=network,
        user=user,
        cap_add=cap_add,
        environment=environment,
        detach=True,
    )
    try:
        status = container.wait(timeout=120)
        return int(status["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def privileged_refusal(reference: str, command: tuple[str, ...] = ("true",)) -> str:
    """Why the engine cannot start `reference` with `--privileged` ("" when it can):
    `command` (one that exits 0 in that image) is run privileged."""
    container = client().containers.create(
        reference, list(command), entrypoint=[], privileged=True, network_mode="none"
    )
    try:
        container.start()
        code = int(container.wait(timeout=60)["StatusCode"])
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    finally:
        container.remove(force=True)
    return "" if code == 0 else f"a privileged `{' '.join(command)}` exited {code}"


def run_detached(
    reference: str,
    *,
    name: str,
    network: str | None = None,
    volumes: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    cap_add: list[str] | None = None,
    dns: list[str] | None = None,
    command: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Start a long-running container (read-only volumes) and return its id."""
    mounts = {source: {"bind": target, "mode": "ro"} for source, target in (volumes or {}).items()}
    try:
        container = client().containers.run(
            reference,
            command,
            name=name,
            network=network,
            detach=True,
            volumes=mounts,
            environment=env or {},
            cap_add=cap_add or [],
            dns=dns or None,
            labels=labels or {},
        )
    except docker.errors.ImageNotFound:
        raise BuildError(f"image {reference} does not exist; build it first") from None
    except docker.errors.APIError as exc:
        raise BuildError(f"could not start {name} from {reference}: {exc.explanation}") from None
    return str(container.id)


def remove_container(name: str) -> bool:
    """Remove a container by name or id if it exists; whether it existed. A removal the
    engine has in progress already (its 409, e.g. after a `docker rm -f` elsewhere) is
    waited for rather than counted as a failure."""
    try:
        client().containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != 409 or "in progress" not in str(exc.explanation or exc):
            raise EngineError(f"docker could not remove {name}: {exc.explanation or exc}") from None
        try:
            wait.until(
                lambda: (
                    wait.NotYet("its removal is in progress") if inspect_if_exists(name) else True
                ),
                timeout=REMOVAL_WAIT_S,
                interval=0.5,
            )
        except wait.TimedOut as timed_out:
            raise EngineError(f"docker did not finish removing {name}: {timed_out}") from None
    return True


def _gone(name: str) -> bool | wait.NotYet:
    return wait.NotYet("its removal is in progress") if inspect_if_exists(name) else True


def container_state(name: str) -> dict[str, Any]:
    container = client().containers.get(name)
    state: dict[str, Any] = container.attrs["State"]
    return state


def inspect_if_exists(name: str) -> dict[str, Any]:
    """The container's `docker inspect` attributes, or {} when there is no such container."""
    try:
        return dict(client().api.inspect_container(name))
    except docker.errors.NotFound:
        return {}


def containers_labelled(label: str) -> list[dict[str, Any]]:
    """`docker inspect` of every container, running or not, that carries `label`."""
    api = client().api
    found = []
    for summary in api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
            found.append(dict(api.inspect_container(summary["Id"])))
    return found


def container_events(label: str) -> tuple[Iterator[str], Callable[[], None]]:
    """The actions (start, die, destroy, health_status: healthy, ...) of the engine's
    events for containers that carry `label`, as they happen, and a function that ends
    the stream from any thread. The iterator ends when the stream does, however its
    connection fails: the caller opens another.
    """
    try:
        stream = client().events(decode=True, filters={"type": "container", "label": label})
    except docker.errors.DockerException as exc:
        raise EngineError(f"the engine refused its event stream ({exc})") from None

    def actions() -> Iterator[str]:
        try:
            for event in stream:
                yield str(event.get("Action") or event.get("status") or "")
        except Exception:
            return

    return actions(), stream.close


def container_logs(name: str) -> str:
    return str(client().containers.get(name).logs().decode(errors="replace"))


def container_ip(name: str, network: str) -> str:
    container = client().containers.get(name)
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def endpoint_addresses(endpoint: dict[str, Any]) -> tuple[str, ...]:
    """The addresses a container holds on one network (an entry of `docker inspect`'s
    NetworkSettings.Networks): IPv4 first, then the global IPv6 one; () while stopped."""
    found = (endpoint.get("IPAddress"), endpoint.get("GlobalIPv6Address"))
    return tuple(str(address) for address in found if address)


def container_addresses(name: str, network: str) -> tuple[str, ...]:
    """The container's addresses on `network`, IPv4 first (both on a dual-stack one)."""
    container = client().containers.get(name)
    container.reload()
    return endpoint_addresses(container.attrs["NetworkSettings"]["Networks"][network])


def exec_in(name: str, command: list[str], user: str = "0") -> tuple[int, str]:
    """Run `command` in a container, the mesh's programs first on its PATH."""
    result = (
        client()
        .containers.get(name)
        .exec_run(command, user=user, environment=image_contract.EXEC_ENVIRONMENT)
    )
    return int(result.exit_code), result.output.decode(errors="replace")


def exec_if_running(name: str, command: list[str]) -> tuple[int, str] | None:
    """`exec_in` as root, or None when the container is gone or not running."""
    try:
        return exec_in(name, command)
    except docker.errors.APIError:
        return None


def network_exists(name: str) -> bool:
    try:
        client().networks.get(name)
    except docker.errors.NotFound:
        return False
    return True


def tag_image(source: str, target: str) -> None:
    repository, tag = target.rsplit(":", 1)
    client().images.get(source).tag(repository, tag)


def push_image(reference: str, on_line: Callable[[str], None] = lambda line: None) -> str:
    """Push one tag; the pushed manifest's digest, or a BuildError saying why not."""
    repository, tag = reference.rsplit(":", 1)
    digest = ""
    try:
        for chunk in client().images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
                raise BuildError(f"push of {reference} was refused: {message}")
            if "status" in chunk and chunk.get("progressDetail") is None:
                on_line(str(chunk["status"]))
            digest = chunk.get("aux", {}).get("Digest", digest)
    except docker.errors.APIError as exc:
        raise BuildError(f"push of {reference} failed: {exc.explanation or exc}") from None
    except docker.errors.DockerException as exc:
        raise BuildError(f"push of {reference} failed: {exc}") from None
    if not digest:
        raise BuildError(f"push of {reference} reported no digest; is the registry reachable?")
    return str(digest)


def pull_image(reference: str) -> str:
    """Pull by reference; the repo digest the registry answered with."""
    try:
        image = client().images.pull(reference)
    except docker.errors.APIError as exc:
        raise BuildError(f"pull of {reference} failed: {exc.explanation or exc}") from None
    digests = image.attrs.get("RepoDigests") or []
    repository = reference.rsplit(":", 1)[0]
    return next((d.split("@", 1)[1] for d in digests if d.startswith(repository + "@")), "")


def repo_digest(reference: str) -> str:
    """The registry digest the engine holds for a reference ("" for an image that was
    built or loaded here, which no registry served)."""
    digests = image_attrs(reference).get("RepoDigests") or []
    name = reference.split("@", 1)[0]
    head, sep, tag = name.rpartition(":")
    repository = head if sep and "/" not in tag else name
    return next((d.split("@", 1)[1] for d in digests if d.startswith(repository + "@")), "")


def image_entrypoint(reference: str) -> list[str]:
    """The image's entrypoint (pulled first where it is missing)."""
    if not image_exists(reference):
        pull_image(reference)
    config = image_attrs(reference).get("Config") or {}
    return [str(word) for word in config.get("Entrypoint") or []]


def copy_from_image(reference: str, path: str, target: Path) -> Path:
    """Copy one file out of an image (pulled first where it is missing) to `target`."""
    if not image_exists(reference):
        pull_image(reference)
    container = client().containers.create(reference)
    try:
        stream, _ = container.get_archive(path)
        with tempfile.TemporaryFile() as archive:
            for chunk in stream:
                archive.write(chunk)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                member = next((m for m in tar.getmembers() if m.isfile()), None)
                extracted = tar.extractfile(member) if member is not None else None
                if extracted is None:
                    raise BuildError(f"{reference} has no file at {path}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(extracted.read())
    except docker.errors.NotFound:
        raise BuildError(f"{reference} has no file at {path}") from None
    finally:
        container.remove(force=True)
    target.chmod(0o755)
    return target


def stop_container(name: str, timeout: int) -> int:
    """`docker stop`: SIGTERM, SIGKILL after `timeout` seconds; the exit code."""
    container = client().containers.get(name)
    container.stop(timeout=timeout)
    container.reload()
    return int(container.attrs["State"]["ExitCode"])


def restart_container(name: str, timeout: int = 10) -> None:
    client().containers.get(name).restart(timeout=timeout)


def wait_for_exit(name: str, timeout: float) -> int:
    """The container's exit code once it exits (an EngineError after `timeout`)."""
    try:
        status = client().containers.get(name).wait(timeout=timeout)
    except Exception as exc:  # requests' ReadTimeout, through docker-py
        raise EngineError(f"{name} did not exit within {timeout:.0f}s ({exc})") from None
    return int(status["StatusCode"])


def network_containers(name: str) -> list[str]:
    """The names of the containers attached to network `name` (none if it is gone)."""
    try:
        network = client().networks.get(name)
    except docker.errors.NotFound:
        return []
    network.reload()
    return sorted(str(c.name) for c in network.containers)


def registry_login(host: str, config_dir: Path | None = None) -> tuple[str, str] | None:
    """The user name and password `docker login HOST` keeps, resolved as the Docker CLI
    does: a credential helper for the host (credHelpers), else the credential store
    (credsStore, e.g. docker-credential-pass), else the plain `auths` entry. None when
    there is no login; an EngineError naming the helper when a helper fails."""
    folder = config_dir or Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    config = docker.auth.load_config(config_path=str(folder / "config.json"))
    try:
        found = config.resolve_authconfig(host)
    except docker.errors.DockerException as exc:
        raise EngineError(
            f"the Docker credential helper for {host} failed ({exc}); check `docker login {host}`"
        ) from None
    if not found:
        return None
    if found.get("IdentityToken"):
        raise EngineError(
            f"the login for {host} is an identity token, which meshexp-build cannot use: "
            f"`docker login {host}` with a user name and a password (or an access token)"
        )
    # `auths` entries are parsed into lower-case keys, a store's answers keep Docker's.
    user = found.get("Username", found.get("username"))
    password = found.get("Password", found.get("password"))
    return (str(user), str(password or "")) if user else None
