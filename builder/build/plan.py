"""The component plan of a build: every binary an image carries, where it comes from and
where it goes, made once per build and passed down; and fetching what the plan names.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from builder.build.sources import Fetched, fetch
from builder.build.spire_configs import SPIRE_SERVER_PORT
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.config.sources import (
    ComponentSource,
    FileSource,
    GoSource,
    ImageSource,
    TrimmedGoSource,
)
from builder.core import image_contract
from builder.core.errors import RenderError
from builder.core.progress import Progress
from builder.core.resources import go_dir

PROXY_PORTS = (4140, 4143, 4190, 4191)


EXECUTABLE = 0o755


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
    proxy = [Component("proxy", image_contract.PROXY, settings.proxy())] if with_proxy else []
    if settings.uses_multicall:
        components += [
            Component("spire", image_contract.SPIRE_SERVER, multicall_source(settings)),
            *proxy,
        ]
        return components + workload_components(workload, settings)
    if settings.topology == "demo":
        components.append(
            Component("spire-server", image_contract.SPIRE_SERVER, settings.spire("spire-server"))
        )
    components += [
        Component("spire-agent", image_contract.SPIRE_AGENT, settings.spire("spire-agent")),
        Component("certcheck", image_contract.CERTCHECK, helper_source()),
        *proxy,
    ]
    return components + workload_components(workload, settings)


# Names the multi-call binary answers to, linked to it in the image.
MULTICALL_LINKS = (image_contract.SPIRE_AGENT, image_contract.CERTCHECK)


def multicall_source(settings: Settings) -> GoSource:
    """SPIRE server and agent and certcheck in one binary (go/cmd/multicall)."""
    build = TrimmedGoSource if settings.trims_spire else GoSource
    return build(package="./cmd/multicall", local=go_dir(), cgo=True)


def _binary_source(name: str, source: ComponentSource, settings: Settings) -> ComponentSource:
    """A `--binary NAME=FILE` given for this binary wins over the catalog's sources."""
    given = settings.binaries.get(name)
    return FileSource(path=given) if given is not None else source


def workload_components(workload: Workload, settings: Settings) -> list[Component]:
    return [
        Component(
            f"workload/{binary.name}",
            f"{image_contract.WORKLOAD_BIN}/{binary.name}",
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


def from_components_image(components: list[Component], image: str | None) -> list[Component]:
    """With a components image, shared binaries are copied from it instead of the context."""
    if image is None:
        return components
    return [
        replace(c, source=ImageSource(ref=image, path=f"/{c.role}"))
        if not c.workload_layer and not isinstance(c.source, ImageSource)
        else c
        for c in components
    ]


def fetch_planned(
    components: list[Component], settings: Settings, progress: Progress | None = None
) -> dict[str, Fetched]:
    """Fetch (build) every non-image component of a plan once: role -> what was fetched."""
    return {
        c.role: fetch(c.source, c.role, settings.arch, progress)
        for c in components
        if not isinstance(c.source, ImageSource)
    }


def fetch_components(
    components: list[Component],
    settings: Settings,
    into: Path,
    shared_elsewhere: bool = False,
    progress: Progress | None = None,
    fetched: dict[str, Fetched] | None = None,
) -> dict[str, Fetched]:
    """Put every non-image component of the plan into the context folder `into`.

    `fetched` holds what the caller has fetched already; the rest is fetched here.
    With `shared_elsewhere` (a components image holds them), only the workload's
    own binaries are copied into the context; the others are only recorded.
    """
    fetched = dict(fetched or {})
    for component in components:
        if isinstance(component.source, ImageSource):
            continue
        got = fetched.get(component.role) or fetch(
            component.source, component.role, settings.arch, progress
        )
        fetched[component.role] = got
        if shared_elsewhere and not component.workload_layer:
            continue
        target = into / component.context_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(got.path, target)
        target.chmod(EXECUTABLE)
    return fetched
