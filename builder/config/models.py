"""Typed, frozen models of the catalog and the build settings, read and checked once.

The input shapes are declared in `schema.py` (pydantic); a bad value fails
there, naming the file, the field and what would be valid. Here a checked
entry becomes the dataclasses the tool uses; nothing past this re-validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from builder.config.schema import ReadinessEntry, SourceEntry, WorkloadEntry
from builder.config.types import parse
from builder.core.errors import CatalogError, SettingsError

# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class ImageSource:
    """A file copied out of a container image with a build stage."""

    ref: str
    path: str
    kind: str = "image"


@dataclass(frozen=True)
class FileSource:
    """A binary on disk, copied into the build context."""

    path: Path
    kind: str = "file"


@dataclass(frozen=True)
class UrlSource:
    """A binary downloaded over HTTPS and verified against a sha256 before use."""

    url: str
    sha256: str
    kind: str = "url"


@dataclass(frozen=True)
class GoSource:
    """A Go package built on the host: remote (`package@version`) or from a local module."""

    package: str
    version: str | None = None
    local: Path | None = None
    cgo: bool = False
    # SPIRE with only the plugins our configs name (builder/build/spire_plugins.py).
    trim_spire: bool = False
    kind: str = "go"

    def describe(self) -> str:
        trimmed = ", configured SPIRE plugins only" if self.trim_spire else ""
        if self.version:
            return f"{self.package}@{self.version}" + (f" ({trimmed[2:]})" if trimmed else "")
        return f"{self.package} (local module {self.local.name if self.local else '?'}{trimmed})"


BinarySource = ImageSource | FileSource | UrlSource | GoSource


@dataclass(frozen=True)
class FirstOf:
    """Alternatives tried in order (a catalog list): the first that can be had is
    used, and the image's labels name it. Lets an entry prefer the real program
    (from the Go module proxy) and fall back to a compatible build.
    """

    sources: tuple[BinarySource, ...]
    kind: str = "first-of"


ComponentSource = BinarySource | FirstOf


def describe_source(source: ComponentSource) -> str:
    """One line naming a source, for labels, errors and `doctor`."""
    if isinstance(source, FirstOf):
        return "first of: " + "; ".join(describe_source(one) for one in source.sources)
    if isinstance(source, ImageSource):
        return f"image {source.ref}:{source.path}"
    if isinstance(source, FileSource):
        return f"file {source.path.name}"
    if isinstance(source, UrlSource):
        return f"url {source.url}"
    return f"go {source.describe()}"


def read_source(
    data: object, where: str, base_dir: Path, error: type[CatalogError] | type[SettingsError]
) -> BinarySource:
    """Read a `{kind: {...}}` mapping with exactly one kind."""
    return source_from(parse(SourceEntry, data, where, error), base_dir)


def source_from(entry: SourceEntry, base_dir: Path) -> BinarySource:
    """A checked source entry as the dataclass builds use; paths relative to base_dir."""
    if entry.image is not None:
        return ImageSource(ref=entry.image.ref, path=entry.image.path)
    if entry.file is not None:
        return FileSource(path=(base_dir / entry.file.path).resolve())
    if entry.url is not None:
        return UrlSource(url=entry.url.url, sha256=entry.url.sha256)
    assert entry.go is not None
    go = entry.go
    return GoSource(
        package=go.package,
        version=go.version,
        local=(base_dir / go.local).resolve() if go.local else None,
        cgo=go.cgo,
    )


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Port:
    """A port the workload listens on, with what it speaks there.

    `app_protocol` decides how `check` probes the port: an HTTP/1 request, a
    gRPC call (`grpc_method`, or the standard health check), or a plain
    connection for opaque TCP.
    """

    name: str
    port: int
    protocol: str = "TCP"
    app_protocol: str = "http"
    grpc_method: str | None = None

    @property
    def label(self) -> str:
        """`http:8000/TCP`: how the image's `io.meshexp.ports` label records it."""
        return f"{self.name}:{self.port}/{self.protocol}"

    @property
    def probe_spec(self) -> str:
        """`8000=grpc:/Service/Method`, `9090=http`: how the image's label records it."""
        spec = f"{self.port}={self.app_protocol}"
        return f"{spec}:{self.grpc_method}" if self.grpc_method else spec


@dataclass(frozen=True)
class Binary:
    """One executable of a workload, installed at /opt/workload/bin/<name>."""

    name: str
    source: BinarySource
    offline: ComponentSource | None = None

    def source_for(self, offline: bool) -> ComponentSource:
        return self.offline if offline and self.offline is not None else self.source


@dataclass(frozen=True)
class Dispatch:
    """Pick the command at start from an environment variable (like FACES_SERVICE)."""

    env: str
    default: str
    commands: tuple[tuple[str, tuple[str, ...]], ...]


HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Readiness:
    """The workload's readiness probe, run inside its container by meshexp-probe
    (go/internal/probe): Docker's HEALTHCHECK, the bootstrap's "workload ready", the
    keeper's Ready. `kind` is http, grpc, tcp or exec."""

    kind: str
    port: int = 0
    path: str = ""
    status: int | None = None
    # The default probe of an undeclared HTTP port: any answer below this passes.
    status_below: int | None = None
    method: str | None = None
    command: tuple[str, ...] = ()
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    def spec(self, uid: int) -> dict[str, object]:
        """What meshexp-probe reads (the image's /opt/workload/readiness.json)."""
        spec: dict[str, object] = {"kind": self.kind, "timeout": self.timeout, "uid": uid}
        if self.kind == "exec":
            return spec | {"command": list(self.command)}
        spec["port"] = self.port
        if self.kind == "http":
            spec["path"] = self.path
            if self.status is not None:
                spec["status"] = self.status
            if self.status_below is not None:
                spec["status_below"] = self.status_below
        if self.kind == "grpc" and self.method:
            spec["method"] = self.method
        return spec

    def describe(self) -> str:
        if self.kind == "http":
            want = str(self.status) if self.status is not None else "200-399"
            if self.status_below is not None:
                want = f"any status below {self.status_below}"
            return f"http GET {self.path} on port {self.port} ({want})"
        if self.kind == "grpc":
            return f"grpc {self.method or HEALTH_CHECK} on port {self.port}"
        if self.kind == "tcp":
            return f"tcp connect to port {self.port}"
        return "exec " + " ".join(self.command)

    @property
    def timings(self) -> dict[str, int]:
        return {
            "initial_delay": self.initial_delay,
            "period": self.period,
            "timeout": self.timeout,
            "success_threshold": self.success_threshold,
            "failure_threshold": self.failure_threshold,
        }


def read_readiness(entry: ReadinessEntry | None, ports: tuple[Port, ...]) -> Readiness:
    """The declared probe, or the default for the first port's protocol."""
    entry = entry or ReadinessEntry.model_validate({})
    main = ports[0]
    base = Readiness(
        "tcp",
        main.port,
        initial_delay=entry.initial_delay,
        period=entry.period,
        timeout=entry.timeout,
        success_threshold=entry.success_threshold,
        failure_threshold=entry.failure_threshold,
    )

    def number(ref: str | int | None) -> int:
        return next((p.port for p in ports if str(ref) in (p.name, str(p.port))), main.port)

    if entry.exec is not None:
        return replace(base, kind="exec", port=0, command=tuple(entry.exec.command))
    if entry.http is not None:
        http = entry.http
        return replace(
            base, kind="http", port=number(http.port), path=http.path, status=http.status
        )
    if entry.grpc is not None:
        return replace(base, kind="grpc", port=number(entry.grpc.port), method=entry.grpc.method)
    if entry.tcp is not None:
        return replace(base, port=number(entry.tcp.port))
    if main.app_protocol == "grpc":
        return replace(base, kind="grpc", method=main.grpc_method)
    if main.app_protocol == "http":
        # No path is known to exist: any answer that is not a server error shows it up.
        return replace(base, kind="http", path="/", status_below=500)
    return base


@dataclass(frozen=True)
class Workload:
    """A catalog entry: what runs beside the proxy, and how."""

    name: str
    namespace: str
    description: str
    ports: tuple[Port, ...]
    user: str
    uid: int
    binaries: tuple[Binary, ...]
    debian_packages: tuple[str, ...]
    command: tuple[str, ...]
    dispatch: Dispatch | None
    env: tuple[tuple[str, str], ...]
    inbound_default_policy: str | None
    licenses: str = ""
    readiness: Readiness | None = None
    source_file: str = field(default="", compare=False)

    @property
    def probe(self) -> Readiness:
        """The readiness probe (declared, or the default for the first port)."""
        return self.readiness or read_readiness(None, self.ports)

    @property
    def main_port(self) -> Port:
        return self.ports[0]


def _offline(entries: list[SourceEntry] | None, base_dir: Path) -> ComponentSource | None:
    """One source, or alternatives tried in order."""
    if entries is None:
        return None
    sources = tuple(source_from(entry, base_dir) for entry in entries)
    return sources[0] if len(sources) == 1 else FirstOf(sources)


def read_workload(data: object, where: str, base_dir: Path) -> Workload:
    """Validate one catalog document into a Workload."""
    entry = parse(WorkloadEntry, data, where, CatalogError)
    dispatch = entry.dispatch
    ports = tuple(
        Port(p.name, p.port, p.protocol, p.app_protocol, p.grpc_method) for p in entry.ports
    )
    return Workload(
        name=entry.name,
        namespace=entry.namespace,
        description=entry.description,
        licenses=entry.licenses,
        ports=ports,
        readiness=read_readiness(entry.readiness, ports),
        user=entry.user.name,
        uid=entry.user.uid,
        binaries=tuple(
            Binary(
                name=b.name,
                source=source_from(b.source, base_dir),
                offline=_offline(b.offline, base_dir),
            )
            for b in entry.binaries
        ),
        debian_packages=tuple(entry.debian.packages),
        command=tuple(entry.command),
        dispatch=Dispatch(
            env=dispatch.env,
            default=dispatch.default,
            commands=tuple((k, tuple(v)) for k, v in dispatch.commands.items()),
        )
        if dispatch is not None
        else None,
        env=tuple(entry.env.items()),
        inbound_default_policy=entry.inbound_default_policy,
        source_file=where,
    )
