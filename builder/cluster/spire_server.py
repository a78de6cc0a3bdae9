"""`meshexp-build spire-server`: the external SPIRE server of the production topology.

Built from the same SPIRE source as the workload images, signing with the
identity issuer (UpstreamAuthority "disk"), so agent-only images get SVIDs
that chain to the trust anchor. Registration writes each join token to a
file of mode 0600 and never prints it.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder import __version__
from builder.build.plan import EXECUTABLE, Component, helper_source
from builder.build.render import READABLE
from builder.build.sources import fetch
from builder.build.spire_configs import production_server_config
from builder.build.templates import render_template
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.config.sources import ImageSource
from builder.core import image_contract
from builder.core.errors import CheckError, MeshexpError
from builder.core.files import write_secret
from builder.core.progress import Progress, as_progress
from builder.core.wait import NotYet, TimedOut, until
from builder.engine import docker_engine

SERVER_PORT = 8081
SERVER_SOCKET = image_contract.SERVER_SOCKET
JOIN_TOKEN_TTL = 3600


@dataclass(frozen=True)
class Registration:
    workload: str
    spiffe_id: str
    agent_id: str
    token_file: Path | None


def server_image_reference(settings: Settings) -> str:
    return f"meshexp/spire-server:{settings.spire_version}-{settings.arch}"


def agent_id(settings: Settings, name: str) -> str:
    return f"spiffe://{settings.trust_domain}/meshexp/agent/{name}"


def token_command(settings: Settings, name: str) -> list[str]:
    """A single-use join token for the agent of workload `name`."""
    parent = agent_id(settings, name)
    return ["spire-server", "token", "generate", "-spiffeID", parent, "-ttl", str(JOIN_TOKEN_TTL)]


def registration_commands(settings: Settings, namespace: str, name: str) -> dict[str, list[str]]:
    """The server-side commands for one workload: its join token, its entry, its node alias."""
    parent = agent_id(settings, name)
    identity = settings.identity_of(namespace, name)
    return {
        "token": token_command(settings, name),
        "entry": [
            "spire-server",
            "entry",
            "create",
            "-parentID",
            parent,
            "-spiffeID",
            identity.spiffe_id,
            "-selector",
            f"unix:uid:{settings.proxy_uid}",
        ],
        "node": [
            "spire-server",
            "entry",
            "create",
            "-node",
            "-spiffeID",
            parent,
            "-selector",
            f"x509pop:subject:cn:{name}",
        ],
    }


def entry_commands(workload: Workload, settings: Settings, name: str | None = None) -> list[str]:
    """The server-side commands that register one workload (for operators to run)."""
    commands = registration_commands(settings, workload.namespace, name or workload.name)
    return [
        " ".join(shlex.quote(word) for word in commands[key]) for key in ("token", "entry", "node")
    ]


def build_server_image(
    *, settings: Settings, on_line: Progress | Callable[[str], None] | None = None
) -> str:
    """Render and build the server image (reused from the engine's cache when unchanged)."""
    progress = as_progress(on_line)
    reference = server_image_reference(settings)
    components = [
        Component("spire-server", image_contract.SPIRE_SERVER, settings.spire("spire-server")),
        Component("certcheck", image_contract.CERTCHECK, helper_source()),
    ]
    context = {
        "tool_version": __version__,
        "paths": image_contract,
        "spire_uid": settings.spire_uid,
        "spire_version": settings.spire_version,
        "trust_domain": settings.trust_domain,
        "base_image": settings.resolved_base_image,
        "components": components,
        "stages": [
            {"name": c.stage, "ref": c.source.ref}
            for c in components
            if isinstance(c.source, ImageSource)
        ],
    }
    with tempfile.TemporaryDirectory(prefix="meshexp-spire-server-") as scratch:
        root = Path(scratch)
        files = {
            "Dockerfile": (render_template("spire-server.Dockerfile.j2", context), READABLE),
            "scripts/spire-server-entrypoint": (
                render_template("spire-server-entrypoint.sh.j2", context),
                EXECUTABLE,
            ),
            "spire/server.conf": (production_server_config(settings.trust_domain), READABLE),
        }
        for relative, (text, mode) in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
            (root / relative).chmod(mode)
        for component in components:
            if not isinstance(component.source, ImageSource):
                got = fetch(component.source, component.role, settings.arch, progress)
                target = root / component.context_path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(got.path, target)
                target.chmod(EXECUTABLE)
        with progress.phase(f"SPIRE server image {reference}"):
            docker_engine.build_image(
                context=root, tag=reference, platform=settings.platform, on_line=progress.line
            )
    return reference


def start_server(
    *, settings: Settings, network: str, name: str, certs: Path, timeout: float = 60
) -> str:
    """Start (or replace) the server container and wait for its health check; its address."""
    reference = server_image_reference(settings)
    if not docker_engine.network_exists(network):
        docker_engine.create_network(network)
    docker_engine.remove_container(name)
    docker_engine.run_detached(
        reference, name=name, network=network, volumes={str(certs.resolve()): "/opt/spire/certs"}
    )

    def healthy() -> str | NotYet:
        code, out = docker_engine.exec_in(
            name,
            ["spire-server", "healthcheck", "-socketPath", SERVER_SOCKET],
            user=str(settings.spire_uid),
        )
        if code == 0:
            return docker_engine.container_ip(name, network)
        state = docker_engine.container_state(name)
        if not state.get("Running"):
            raise CheckError(
                f"the SPIRE server {name} exited (code {state.get('ExitCode')}):\n"
                f"{docker_engine.container_logs(name)[-2000:]}"
            )
        return NotYet((out.strip().splitlines() or ["no answer"])[-1][:200])

    try:
        return until(healthy, timeout=timeout, interval=0.3)
    except TimedOut as exc:
        raise CheckError(
            f"the SPIRE server {name} was not healthy within {timeout:.0f}s: {exc.reason}"
        ) from None


def _server_exec(server: str, settings: Settings, command: list[str]) -> str:
    code, out = docker_engine.exec_in(
        server, [*command, "-socketPath", SERVER_SOCKET], user=str(settings.spire_uid)
    )
    if code != 0:
        raise MeshexpError(
            f"{command[0]} {command[1]} {command[2]} on {server} failed: {out.strip()[-500:]}"
        )
    return out


def register(
    *, server: str, settings: Settings, workloads: list[Workload], tokens_dir: Path | None
) -> list[Registration]:
    """Create each workload's entries; with tokens_dir, a join token file per workload."""
    registrations = []
    if tokens_dir is not None:
        tokens_dir.mkdir(parents=True, exist_ok=True)
        tokens_dir.chmod(0o700)
    for workload in workloads:
        parent = agent_id(settings, workload.name)
        spiffe_id = settings.identity_of(workload.namespace, workload.name).spiffe_id
        commands = registration_commands(settings, workload.namespace, workload.name)
        _server_exec(server, settings, commands["entry"])
        _server_exec(server, settings, commands["node"])
        token_file = None
        if tokens_dir is not None:
            token_file = new_join_token(
                server=server,
                settings=settings,
                name=workload.name,
                target=tokens_dir / f"{workload.name}.token",
            )
        registrations.append(Registration(workload.name, spiffe_id, parent, token_file))
    return registrations


def new_join_token(*, server: str, settings: Settings, name: str, target: Path) -> Path:
    """A fresh single-use join token for one workload's agent, written 0600, never printed."""
    out = _server_exec(server, settings, token_command(settings, name))
    token = out.strip().removeprefix("Token: ").strip()
    # A token file from an earlier run is replaced, never rewritten with its old mode.
    return write_secret(target, (token + "\n").encode())
