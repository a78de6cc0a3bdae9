"""Typed, frozen models of the catalog and the build settings, read and checked once.

The input shapes are declared in `schema.py` (pydantic); a bad value fails
there, naming the file, the field and what would be valid. Here a checked
entry becomes the dataclasses the tool uses; nothing past this re-validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.config.schema import SourceEntry, WorkloadEntry
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
    source_file: str = field(default="", compare=False)

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
    return Workload(
        name=entry.name,
        namespace=entry.namespace,
        description=entry.description,
        licenses=entry.licenses,
        ports=tuple(
            Port(p.name, p.port, p.protocol, p.app_protocol, p.grpc_method) for p in entry.ports
        ),
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
