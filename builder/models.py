"""Typed, frozen models of the catalog and the build settings, read and checked once.

A bad value fails here, naming the file, the field and what would be valid;
nothing past this module re-validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.contract import INBOUND_POLICIES as INBOUND_POLICY_CHOICES
from builder.errors import CatalogError, SettingsError
from builder.validation import (
    ABS_PATH,
    DEBIAN_PACKAGE,
    DNS_LABEL,
    ENV_NAME,
    GO_PACKAGE,
    GO_VERSION,
    GRPC_METHOD,
    IMAGE_REF,
    PORT_NAME,
    SHA256,
    SPDX_EXPRESSION,
    USER_NAME,
    Fields,
)

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
    kind: str = "go"

    def describe(self) -> str:
        if self.version:
            return f"{self.package}@{self.version}"
        return f"{self.package} (local module {self.local.name if self.local else '?'})"


BinarySource = ImageSource | FileSource | UrlSource | GoSource
SOURCE_KINDS = ("image", "file", "url", "go")


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
    outer = Fields(data, where, SOURCE_KINDS, error)
    if len(outer.data) != 1:
        raise error(f"{where}: give exactly one source kind of: {', '.join(SOURCE_KINDS)}")
    kind = next(iter(outer.data))
    inner_where = outer.path(kind)
    if kind == "image":
        f = Fields(outer.raw(kind), inner_where, ("ref", "path"), error)
        return ImageSource(
            ref=f.text(
                "ref", pattern=IMAGE_REF, hint="an image reference like ghcr.io/org/name:tag"
            ),
            path=f.text("path", pattern=ABS_PATH, hint="an absolute path inside the image"),
        )
    if kind == "file":
        f = Fields(outer.raw(kind), inner_where, ("path",), error)
        return FileSource(path=(base_dir / f.text("path")).resolve())
    if kind == "url":
        f = Fields(outer.raw(kind), inner_where, ("url", "sha256"), error)
        url = f.text("url")
        if not url.startswith("https://"):
            raise f.bad("url", f"{url!r} must start with https://")
        return UrlSource(
            url=url, sha256=f.text("sha256", pattern=SHA256, hint="64 lowercase hex digits")
        )
    f = Fields(outer.raw(kind), inner_where, ("package", "version", "local", "cgo"), error)
    package = f.text("package", pattern=GO_PACKAGE, hint="a Go import path or ./relative package")
    if f.has("version") == f.has("local"):
        raise error(
            f"{inner_where}: give either version (a module from the Go proxy) or local "
            "(a module folder), not both or neither"
        )
    version = f.text("version", pattern=GO_VERSION, hint="a semver tag like v1.13.3", default="")
    local = f.text("local", default="")
    return GoSource(
        package=package,
        version=version or None,
        local=(base_dir / local).resolve() if local else None,
        cgo=f.boolean("cgo", False),
    )


# --------------------------------------------------------------------------- catalog


APP_PROTOCOLS = ("http", "grpc", "opaque")


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


WORKLOAD_FIELDS = (
    "name",
    "namespace",
    "description",
    "ports",
    "user",
    "binaries",
    "debian",
    "command",
    "dispatch",
    "env",
    "inbound_default_policy",
    "licenses",
)
RESERVED_UIDS = range(0, 1000)


def read_port(data: object, where: str) -> Port:
    f = Fields(
        data, where, ("name", "port", "protocol", "app_protocol", "grpc_method"), CatalogError
    )
    app_protocol = f.choice("app_protocol", APP_PROTOCOLS, default="http")
    if f.has("grpc_method") and app_protocol != "grpc":
        raise f.bad("grpc_method", "only a port with app_protocol: grpc takes a grpc_method")
    return Port(
        name=f.text(
            "name",
            pattern=PORT_NAME,
            hint="an IANA service name: lowercase letters, digits, '-', at most 15",
        ),
        port=f.integer("port", low=1, high=65535),
        protocol=f.choice("protocol", ("TCP", "UDP", "SCTP"), default="TCP"),
        app_protocol=app_protocol,
        grpc_method=f.text(
            "grpc_method",
            pattern=GRPC_METHOD,
            hint="a full gRPC method name like /ColorService/Center",
            default="",
        )
        or None,
    )


def _read_dispatch(data: object, where: str) -> Dispatch:
    f = Fields(data, where, ("env", "default", "commands"), CatalogError)
    env = f.text("env", pattern=ENV_NAME, hint="an environment variable name")
    raw = f.raw("commands")
    if not isinstance(raw, dict) or not raw:
        raise f.bad("commands", "expected a mapping of choice -> command list")
    commands = []
    for choice, command in raw.items():
        if not isinstance(choice, str) or not DNS_LABEL.match(choice):
            raise f.bad("commands", f"choice {choice!r} must be a DNS label")
        holder = Fields(
            {"command": command}, f"{f.path('commands')}.{choice}", ("command",), CatalogError
        )
        commands.append((choice, tuple(holder.texts("command"))))
    default = f.text("default")
    if default not in dict(commands):
        raise f.bad(
            "default", f"{default!r} is not one of the commands: {', '.join(dict(commands))}"
        )
    return Dispatch(env=env, default=default, commands=tuple(commands))


def _read_env(f: Fields) -> tuple[tuple[str, str], ...]:
    raw = f.raw("env", {})
    if not isinstance(raw, dict):
        raise f.bad("env", "expected a mapping of NAME: value")
    pairs = []
    for name, value in raw.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise f.bad("env", f"{name!r} is not a valid variable name (letters, digits, '_')")
        if name.startswith("LINKERD2_PROXY_") or name.startswith("MESHEXP_"):
            raise f.bad("env", f"{name!r} is reserved for the proxy and bootstrap; rename it")
        holder = Fields({name: value}, f.path("env"), (name,), CatalogError)
        pairs.append((name, holder.text(name)))
    return tuple(pairs)


def _read_offline(b: Fields, base_dir: Path) -> ComponentSource:
    """One source, or a list of alternatives tried in order."""
    raw = b.raw("offline")
    if not isinstance(raw, list):
        return read_source(raw, b.path("offline"), base_dir, CatalogError)
    if not raw:
        raise b.bad("offline", "give one source, or a list of alternatives tried in order")
    return FirstOf(
        tuple(
            read_source(item, f"{b.path('offline')}[{index}]", base_dir, CatalogError)
            for index, item in enumerate(raw)
        )
    )


def read_workload(data: object, where: str, base_dir: Path) -> Workload:
    """Validate one catalog document into a Workload."""
    f = Fields(data, where, WORKLOAD_FIELDS, CatalogError)
    ports = f.items("ports", read_port)
    if not ports:
        raise f.bad("ports", "declare at least one port")
    names = [port.name for port in ports]
    if len(set(names)) != len(names):
        raise f.bad("ports", f"port names must be unique, got {names}")
    user = Fields(f.raw("user"), f.path("user"), ("name", "uid"), CatalogError)

    def read_binary(item: object, at: str) -> Binary:
        b = Fields(item, at, ("name", "source", "offline"), CatalogError)
        return Binary(
            name=b.text("name", pattern=DNS_LABEL, hint="lowercase letters, digits, '-'"),
            source=read_source(b.raw("source"), b.path("source"), base_dir, CatalogError),
            offline=_read_offline(b, base_dir) if b.has("offline") else None,
        )

    debian = Fields(f.raw("debian", {}), f.path("debian"), ("packages",), CatalogError)
    workload = Workload(
        name=f.text(
            "name",
            pattern=DNS_LABEL,
            hint="a DNS-1123 label: lowercase letters, digits, '-', at most 63",
        ),
        namespace=f.text("namespace", pattern=DNS_LABEL, hint="a DNS-1123 label"),
        description=f.text("description", default=""),
        licenses=f.text(
            "licenses",
            default="",
            pattern=SPDX_EXPRESSION,
            hint="an SPDX license expression, e.g. Apache-2.0 or MIT OR Apache-2.0",
        ),
        ports=tuple(ports),
        user=user.text("name", pattern=USER_NAME, hint="a Linux user name"),
        uid=user.integer("uid", low=1000, high=65533),
        binaries=tuple(f.items("binaries", read_binary, default=[])),
        debian_packages=tuple(
            debian.texts(
                "packages", pattern=DEBIAN_PACKAGE, hint="a Debian package name", default=[]
            )
        ),
        command=tuple(f.texts("command", default=[])),
        dispatch=_read_dispatch(f.raw("dispatch"), f.path("dispatch"))
        if f.has("dispatch")
        else None,
        env=_read_env(f),
        inbound_default_policy=(
            f.choice("inbound_default_policy", INBOUND_POLICY_CHOICES)
            if f.has("inbound_default_policy")
            else None
        ),
        source_file=where,
    )
    if bool(workload.command) == bool(workload.dispatch):
        raise CatalogError(f"{where}: give either command or dispatch (exactly one)")
    if not workload.binaries and not workload.debian_packages:
        raise CatalogError(
            f"{where}: give binaries or debian.packages: the workload must come from somewhere"
        )
    return workload
