"""Render a complete build context (Dockerfile, scripts, configs, binaries) for a workload.

`render_files` is pure (templates only, no fetching), which is what the golden
tests compare. `render_build_context` also fetches the non-image components
and writes everything into a scratch folder beside the output, then moves it
into place: on any error, nothing is left in the output folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.proxy_release import proxy_release
from builder.build.sources import Fetched, fetch
from builder.build.templates import render_template
from builder.config.models import (
    ComponentSource,
    FileSource,
    GoSource,
    ImageSource,
    Workload,
    describe_source,
)
from builder.config.settings import Settings
from builder.core.errors import RenderError
from builder.core.progress import Progress
from builder.core.resources import go_dir

SPIRE_SERVER_PORT = 18081
PROXY_PORTS = (4140, 4143, 4190, 4191)
SYSTEM_PACKAGES = ("iproute2", "iptables")
CONTEXT_MANIFEST = "meshexp-context.json"
EXECUTABLE = 0o755
READABLE = 0o644


@dataclass(frozen=True)
class Component:
    """One binary of the image: where it comes from and where it goes."""

    role: str
    destination: str
    source: ComponentSource
    workload_layer: bool = False

    @property
    def stage(self) -> str:
        return "src-" + self.role.replace("/", "-")

    @property
    def context_path(self) -> str:
        if self.workload_layer:
            return f"workload/bin/{self.role.split('/', 1)[1]}"
        return f"components/{self.role}"

    @property
    def copy_from(self) -> str:
        if isinstance(self.source, ImageSource):
            return f"--from={self.stage} {self.source.path}"
        return self.context_path


@dataclass(frozen=True)
class RenderResult:
    """What was written, for the CLI and for `image`."""

    output: Path
    image: str
    components: tuple[dict[str, Any], ...]
    standin: bool
    files: tuple[str, ...] = field(default=())


def helper_source() -> GoSource:
    """meshexp-certcheck, our certificate checker, built from the shipped Go module."""
    return GoSource(package="./cmd/certcheck", local=go_dir())


def plan_components(
    workload: Workload, settings: Settings, with_proxy: bool = True
) -> list[Component]:
    """Every binary the image carries, in Dockerfile order (shared first, workload last).

    Without `with_proxy`: all but the proxy (which is given, never built).
    """
    components = []
    proxy = (
        [Component("proxy", "/usr/lib/linkerd/linkerd2-proxy", settings.proxy())]
        if with_proxy
        else []
    )
    if settings.uses_multicall:
        components += [
            Component("spire", "/usr/local/bin/spire-server", multicall_source()),
            *proxy,
        ]
        return components + workload_components(workload, settings)
    if settings.topology == "demo":
        components.append(
            Component("spire-server", "/usr/local/bin/spire-server", settings.spire("spire-server"))
        )
    components += [
        Component("spire-agent", "/usr/local/bin/spire-agent", settings.spire("spire-agent")),
        Component("certcheck", "/usr/local/bin/meshexp-certcheck", helper_source()),
        *proxy,
    ]
    return components + workload_components(workload, settings)


# Names the multi-call binary answers to, linked to it in the image.
MULTICALL_LINKS = ("/usr/local/bin/spire-agent", "/usr/local/bin/meshexp-certcheck")


def multicall_source() -> GoSource:
    """SPIRE server and agent and certcheck in one binary (go/cmd/multicall)."""
    return GoSource(package="./cmd/multicall", local=go_dir(), cgo=True)


def _binary_source(name: str, source: ComponentSource, settings: Settings) -> ComponentSource:
    """A `--binary NAME=FILE` given for this binary wins over the catalog's sources."""
    given = dict(settings.binaries).get(name)
    return FileSource(path=given) if given is not None else source


def workload_components(workload: Workload, settings: Settings) -> list[Component]:
    return [
        Component(
            f"workload/{binary.name}",
            f"/opt/workload/bin/{binary.name}",
            _binary_source(binary.name, binary.source_for(settings.offline), settings),
            workload_layer=True,
        )
        for binary in workload.binaries
    ]


def check_workload_fits(workload: Workload, settings: Settings) -> None:
    """Refuse workloads whose ports clash with the proxy's or SPIRE's."""
    reserved = {*PROXY_PORTS, SPIRE_SERVER_PORT}
    for port in workload.ports:
        if port.port in reserved:
            raise RenderError(
                f"{workload.source_file} ports: {port.port} is used by the proxy "
                f"or SPIRE ({sorted(reserved)}); give the workload another port"
            )
    if workload.uid in (settings.proxy_uid, settings.spire_uid):
        raise RenderError(
            f"{workload.source_file} user.uid {workload.uid} is the proxy's or "
            "SPIRE's UID; the workload needs its own so the capture applies to it"
        )


def _labels(
    workload: Workload,
    settings: Settings,
    components: list[Component],
    fetched: dict[str, Fetched],
    extra_labels: tuple[tuple[str, str], ...] = (),
) -> list[tuple[str, str]]:
    """The image's labels: ours (io.meshexp.*), OCI's, then the build's and the user's."""
    facts = settings.facts
    labels = [
        ("org.opencontainers.image.title", workload.name),
        ("org.opencontainers.image.description", workload.description or workload.name),
        (
            "org.opencontainers.image.version",
            settings.image_reference(workload.name).split(":")[-1],
        ),
        ("org.opencontainers.image.vendor", "meshexp-build"),
        ("io.meshexp.tool-version", __version__),
        ("io.meshexp.workload", workload.name),
        ("io.meshexp.linkerd-version", facts.linkerd_version),
        *_proxy_labels(settings, fetched),
        ("io.meshexp.spire-version", settings.spire_version),
        ("io.meshexp.spire-topology", settings.topology),
        ("io.meshexp.iptables-mode", settings.resolved_iptables_mode),
        ("io.meshexp.proxy-uid", str(settings.proxy_uid)),
        ("io.meshexp.trust-domain", settings.trust_domain),
        ("io.meshexp.identity", settings.identity),
        ("io.meshexp.spire-multicall", "true" if settings.uses_multicall else "false"),
        ("io.meshexp.spire-uid", str(settings.spire_uid)),
        ("io.meshexp.workload-uid", str(workload.uid)),
        ("io.meshexp.workload-namespace", workload.namespace),
        ("io.meshexp.workload-ports", ",".join(str(port.port) for port in workload.ports)),
        ("io.meshexp.port-protocols", ",".join(port.probe_spec for port in workload.ports)),
        ("io.meshexp.inbound-policy", inbound_policy(workload, settings)),
        (
            "io.meshexp.inbound-ports-to-ignore",
            ",".join(map(str, settings.inbound_ports_to_ignore)),
        ),
        (
            "io.meshexp.outbound-ports-to-ignore",
            ",".join(map(str, settings.outbound_ports_to_ignore)),
        ),
    ]
    labels.append(("org.opencontainers.image.base.name", settings.resolved_base_image))
    if workload.licenses:
        labels.append(("org.opencontainers.image.licenses", workload.licenses))
    for component in components:
        described = describe_source(component.source)
        if component.role in fetched:
            got = fetched[component.role]
            described = f"{describe_source(got.source or component.source)} sha256:{got.sha256}"
        labels.append((f"io.meshexp.source.{component.role.replace('/', '.')}", described))
    if any(item.standin for item in fetched.values()):
        labels.append(
            ("io.meshexp.proxy-standin", "PROXY STAND-IN: not a Linkerd proxy (test equipment)")
        )
    return [*labels, *extra_labels, *settings.labels]


def inbound_policy(workload: Workload, settings: Settings) -> str:
    """The image's default inbound policy: the workload's own, else the settings'."""
    return workload.inbound_default_policy or settings.inbound_default_policy


def _proxy_labels(settings: Settings, fetched: dict[str, Fetched]) -> list[tuple[str, str]]:
    """The proxy's version as the binary itself tells it, where it can be asked.

    An image source is named by its tag; a binary file is run once (empty
    environment) and its release line read; where it cannot run here (another
    architecture), the settings' table speaks and the label says so.
    """
    got = fetched.get("proxy")
    if got is None:
        return [("io.meshexp.proxy-version", settings.facts.proxy_version)]
    release = proxy_release(got.path, got.sha256, settings.arch)
    if release is None:
        return [
            ("io.meshexp.proxy-version", settings.facts.proxy_version),
            ("io.meshexp.proxy-release", "unverified: the binary could not be asked here"),
        ]
    return [
        ("io.meshexp.proxy-version", release.version),
        ("io.meshexp.proxy-release", release.label),
    ]


def from_components_image(components: list[Component], image: str | None) -> list[Component]:
    """With a components image, shared binaries are copied from it instead of the context."""
    if image is None:
        return components
    return [
        replace(c, source=ImageSource(image, f"/{c.role}"))
        if not c.workload_layer and not isinstance(c.source, ImageSource)
        else c
        for c in components
    ]


def _context(
    workload: Workload,
    settings: Settings,
    components: list[Component],
    fetched: dict[str, Fetched],
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    facts = settings.facts
    copied = from_components_image(components, components_image)
    mode = settings.resolved_iptables_mode
    return {
        "tool_version": __version__,
        "workload": workload,
        "settings": settings,
        "facts": facts,
        "base_image": settings.resolved_base_image,
        "system_packages": SYSTEM_PACKAGES,
        "iptables_mode": mode,
        "iptables_binary": f"iptables-{mode}",
        "inbound_ignore": ",".join(map(str, settings.inbound_ports_to_ignore)),
        "outbound_ignore": ",".join(map(str, settings.outbound_ports_to_ignore)),
        "inbound_ports": ",".join(str(port.port) for port in workload.ports),
        "profile_networks": ",".join(settings.profile_networks),
        "inbound_policy": inbound_policy(workload, settings),
        "spire_server_port": SPIRE_SERVER_PORT,
        "stages": [
            {"name": c.stage, "ref": c.source.ref}
            for c in copied
            if isinstance(c.source, ImageSource)
        ],
        "components": [c for c in copied if not c.workload_layer],
        "workload_components": [
            c for c in copied if c.workload_layer and isinstance(c.source, ImageSource)
        ],
        "labels": _labels(workload, settings, components, fetched, extra_labels),
        "links": MULTICALL_LINKS if settings.uses_multicall else (),
        "link_target": "/usr/local/bin/spire-server",
    }


def render_files(
    workload: Workload,
    settings: Settings,
    fetched: dict[str, Fetched] | None = None,
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
) -> dict[str, tuple[str, int]]:
    """Every templated file of the context: relative path -> (text, mode). Pure."""
    check_workload_fits(workload, settings)
    components = plan_components(workload, settings)
    context = _context(
        workload, settings, components, fetched or {}, components_image, extra_labels
    )
    files = {
        "Dockerfile": (render_template("Dockerfile.j2", context), READABLE),
        "scripts/bootstrap": (render_template("bootstrap.sh.j2", context), EXECUTABLE),
        "scripts/run-proxy": (render_template("run-proxy.sh.j2", context), EXECUTABLE),
        "workload/launch": (render_template("launch.sh.j2", context), EXECUTABLE),
    }
    if settings.topology == "demo":
        files["spire/server.conf"] = (render_template("server.conf.j2", context), READABLE)
        files["spire/agent.conf"] = (
            render_template(
                "agent.conf.j2",
                {
                    **context,
                    "attestation": "join_token",
                    "server_address": "127.0.0.1",
                    "server_port": SPIRE_SERVER_PORT,
                },
            ),
            READABLE,
        )
    else:
        for attestation in ("join_token", "x509pop"):
            name = f"spire/agent-{attestation.replace('_', '-')}.conf"
            files[name] = (
                render_template(
                    "agent.conf.j2",
                    {
                        **context,
                        "attestation": attestation,
                        "server_address": "${SPIRE_SERVER_ADDRESS}",
                        "server_port": "${SPIRE_SERVER_PORT}",
                    },
                ),
                READABLE,
            )
    return files


def fetch_components(
    workload: Workload,
    settings: Settings,
    into: Path,
    shared_elsewhere: bool = False,
    progress: Progress | None = None,
) -> dict[str, Fetched]:
    """Fetch every non-image component into the context folder `into`.

    With `shared_elsewhere` (a components image holds them), only the workload's
    own binaries are copied into the context; the others are only recorded.
    """
    fetched = {}
    for component in plan_components(workload, settings):
        if isinstance(component.source, ImageSource):
            continue
        got = fetch(component.source, component.role, settings.arch, progress)
        fetched[component.role] = got
        if shared_elsewhere and not component.workload_layer:
            continue
        target = into / component.context_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(got.path, target)
        target.chmod(EXECUTABLE)
    return fetched


def _write(files: dict[str, tuple[str, int]], into: Path) -> None:
    for relative, (text, mode) in files.items():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(mode)


def _move_into_place(scratch: Path, output: Path) -> None:
    """Swap the finished scratch folder in for `output` (which may hold an old context)."""
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=".meshexp-old-", dir=output.parent))
        output.rename(old / "context")
        scratch.rename(output)
        shutil.rmtree(old)
    else:
        scratch.rename(output)


def render_build_context(
    *,
    workload: Workload,
    settings: Settings,
    output: Path,
    force: bool = False,
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
    progress: Progress | None = None,
) -> RenderResult:
    """Write a complete build context into `output`, all or nothing.

    `extra_labels` (the build's provenance) go after the tool's own labels.
    """
    output = output.resolve()
    if output.exists() and not output.is_dir():
        raise RenderError(f"{output} exists and is not a folder; choose another --output")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise RenderError(
            f"{output} is not empty; choose an empty folder or add --force to replace its contents"
        )
    files = render_files(workload, settings)  # fails early, before anything is fetched
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".meshexp-render-", dir=output.parent))
    try:
        fetched = fetch_components(
            workload, settings, scratch, components_image is not None, progress
        )
        files = render_files(workload, settings, fetched, components_image, extra_labels)
        _write(files, scratch)
        components = tuple(
            {
                "role": c.role,
                "destination": c.destination,
                "source": describe_source(c.source),
                "sha256": fetched[c.role].sha256 if c.role in fetched else None,
            }
            for c in plan_components(workload, settings)
        )
        result = RenderResult(
            output=output,
            image=settings.image_reference(workload.name),
            components=components,
            standin=any(item.standin for item in fetched.values()),
            files=tuple(
                sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
            ),
        )
        manifest = {
            "workload": workload.name,
            "image": result.image,
            "platform": settings.platform,
            "standin": result.standin,
            "components": list(components),
        }
        (scratch / CONTEXT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        scratch.chmod(0o755)
        _move_into_place(scratch, output)
        return result
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
