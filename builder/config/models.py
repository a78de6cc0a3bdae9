"""The catalog entry: one set of pydantic models that both
check a file and serve the rest of the tool, frozen once checked.

Unknown fields are refused, every value that can reach a script, a Dockerfile or a
manifest passes a strict pattern, and each error names the file, the field and what
would be valid (`images/x.yaml: ports[0].name: 'HTTP' is not valid (...)`); the value
types and their words are builder.config.types'. The same models give the JSON Schema
that `meshexp-build schema catalog|settings` prints (builder.config.editor_schema).

Where a binary comes from is builder.config.sources'; the readiness probe,
builder.config.probes'.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from builder.config.contract import InboundPolicy
from builder.config.probes import ProbeEntry, Readiness
from builder.config.sources import BinarySource, ComponentSource, FirstOf, alternatives
from builder.config.types import (
    AppProtocol,
    BinaryName,
    Choice,
    ChoiceName,
    DebianPackage,
    DnsLabel,
    Entry,
    EnvName,
    FreeText,
    GrpcMethod,
    ImagePath,
    ImageRef,
    PortName,
    PortNumber,
    SpdxExpression,
    Uid,
    UserName,
    WorkloadName,
    parse,
    refuse,
)
from builder.config.validation import ENV_NAME, shown
from builder.core.errors import CatalogError

SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"

# --------------------------------------------------------------------------- catalog


class Port(Entry):
    """A port the workload listens on, with what it speaks there.

    `app_protocol` decides how `check` probes the port: an HTTP/1 request, a
    gRPC call (`grpc_method`, or the standard health check), or a plain
    connection for opaque TCP.
    """

    name: PortName = Field(description="the port's name")
    port: PortNumber = Field(description="the port number")
    protocol: Annotated[Literal["TCP", "UDP", "SCTP"], Choice()] = Field(
        "TCP", description="the transport"
    )
    app_protocol: Annotated[AppProtocol, Choice()] = Field(
        "http",
        description="what the port speaks; `check` probes it so: http (GET /), grpc (a call), "
        "opaque (a connection)",
    )
    grpc_method: GrpcMethod | None = Field(
        None, description="the gRPC method check calls (default: the standard health check)"
    )

    @model_validator(mode="after")
    def _method_needs_grpc(self) -> Self:
        if self.grpc_method is not None and self.app_protocol != "grpc":
            refuse("grpc_method: only a port with app_protocol: grpc takes a grpc_method")
        return self

    @property
    def label(self) -> str:
        """`http:8000/TCP`: how the image's `io.meshexp.ports` label records it."""
        return f"{self.name}:{self.port}/{self.protocol}"

    @property
    def probe_spec(self) -> str:
        """`8000=grpc:/Service/Method`, `9090=http`: how the image's label records it."""
        spec = f"{self.port}={self.app_protocol}"
        return f"{spec}:{self.grpc_method}" if self.grpc_method else spec


class User(Entry):
    """The workload's own non-root user (not the proxy's 2102 or SPIRE's 2103)."""

    name: UserName = Field(description="a Linux user name")
    uid: Uid = Field(description="its UID")


@dataclass(frozen=True)
class RunAs:
    """Who runs the workload: the entry's user, or the user its image names (any UID,
    root too: an application's image is taken as it is)."""

    name: str
    uid: int


class FromImage(Entry):
    """The application's own image: the mesh is laid on it, and its command, user,
    working folder, environment and ports are the workload's unless the entry says
    otherwise."""

    image: ImageRef = Field(description="the application's image, e.g. registry.corp/app:1.4")


class Binary(Entry):
    """One program of the workload, installed at /opt/workload/bin/<name>."""

    name: BinaryName = Field(description="the binary's file name")
    source: BinarySource = Field(description="where it comes from online")
    # One source, or alternatives tried in order: see editor_schema for its schema.
    offline: Annotated[tuple[BinarySource, ...] | None, BeforeValidator(alternatives)] = None

    def source_for(self, offline: bool) -> ComponentSource:
        if not offline or self.offline is None:
            return self.source
        return self.offline[0] if len(self.offline) == 1 else FirstOf(self.offline)


class Debian(Entry):
    packages: tuple[DebianPackage, ...] = ()


Command = tuple[FreeText, ...]


class Dispatch(Entry):
    """Pick the command at start from an environment variable (like FACES_SERVICE)."""

    env: EnvName = Field(description="the variable that picks")
    default: FreeText = Field(description="the choice when the variable is unset")
    commands: dict[ChoiceName, Command]

    @model_validator(mode="after")
    def _default_is_a_command(self) -> Self:
        if not self.commands:
            refuse("commands: expected a mapping of choice -> command list")
        if self.default not in self.commands:
            refuse(
                f"default: {shown(self.default)} is not one of the commands: "
                f"{', '.join(self.commands)}"
            )
        return self


def decide_probe(entry: ProbeEntry | None, ports: tuple[Port, ...]) -> Readiness:
    """The declared probe, or the default for the first port's protocol."""
    entry = entry or ProbeEntry()
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
        return replace(base, kind="exec", port=0, command=entry.exec.command)
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


def _env_names(value: object) -> object:
    if not isinstance(value, dict):
        refuse("expected a mapping of NAME: value")
    for name in value:
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            refuse(f"{shown(name)} is not a valid variable name (letters, digits, '_')")
        if name.startswith(("LINKERD2_PROXY_", "MESHEXP_")):
            refuse(f"{shown(name)} is reserved for the proxy and bootstrap; rename it")
    return value


class Workload(Entry):
    """One catalog entry: a workload and what runs beside the proxy for it."""

    name: WorkloadName = Field(
        description="the workload's name (ExternalWorkload, image, SPIFFE ID)"
    )
    namespace: DnsLabel = Field(description="its Kubernetes namespace")
    description: FreeText = Field("", description="one line for people")
    licenses: SpdxExpression = Field(
        "", description="an SPDX expression for the image's licenses label"
    )
    from_image: FromImage | None = Field(
        None,
        alias="from",
        description="an application's own image to lay the mesh on (instead of binaries or "
        "debian): its command, user, folder and ports unless given here",
    )
    ports: tuple[Port, ...] = Field(
        (),
        description="the ports it listens on; the first is the one the bootstrap waits for "
        "(from an image: its EXPOSE where none are given)",
    )
    user: User | None = Field(None, description="who runs it (from an image: its USER)")
    workdir: ImagePath | None = Field(
        None, description="its working folder (from an image: its WORKDIR)"
    )
    binaries: tuple[Binary, ...] = ()
    debian: Debian = Debian()
    command: Command = ()
    dispatch: Dispatch | None = None
    env: Annotated[dict[str, FreeText], BeforeValidator(_env_names)] = Field(default_factory=dict)
    inbound_default_policy: Annotated[InboundPolicy, Choice()] | None = Field(
        None, description="the proxy's default inbound policy"
    )
    readiness: ProbeEntry | None = Field(
        None,
        description="the readiness probe (default: by the first port's app_protocol: http "
        "GET /, the gRPC health check or the port's grpc_method, a TCP connection)",
    )
    # Where the entry was read (`images/x.yaml:`), for messages about it.
    _source_file: str = PrivateAttr("")
    # From an image: what its config said, and the image as used (the reference pulled,
    # the digest or local ID), where builder.build.from_image has read them.
    _image_user: RunAs | None = PrivateAttr(None)
    _image_used: tuple[str, str] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _whole_entry(self, info: ValidationInfo) -> Self:
        names = [port.name for port in self.ports]
        if len(set(names)) != len(names):
            refuse(f"ports: port names must be unique, got {names}")
        if self.command and self.dispatch:
            refuse("give either command or dispatch (exactly one)")
        if self.from_image is None:
            self._built_here()
        elif self.binaries or self.debian.packages:
            refuse("from: an image brings the workload; give no binaries or debian.packages")
        if self.readiness is not None:
            self._probe_port_is_declared(self.readiness)
        self._source_file = str((info.context or {}).get("where", ""))
        return self

    def _built_here(self) -> None:
        """What an entry that builds its workload here must say itself."""
        if not self.ports:
            refuse("ports: declare at least one port")
        if not self.command and not self.dispatch:
            refuse("give either command or dispatch (exactly one)")
        if self.user is None:
            refuse("user: give the workload's own user, e.g. {name: app, uid: 2300}")
        if not self.binaries and not self.debian.packages:
            refuse("give binaries, debian.packages or from: the workload must come from somewhere")

    def _probe_port_is_declared(self, readiness: ProbeEntry) -> None:
        probe = readiness.http or readiness.grpc or readiness.tcp
        port = getattr(probe, "port", None)
        if port is None:
            return
        known = [p.name for p in self.ports] + [str(p.port) for p in self.ports]
        if str(port) not in known:
            refuse(
                f"readiness: port {shown(port)} is not one of the entry's ports "
                f"({', '.join(str(p.name) + '=' + str(p.port) for p in self.ports)})"
            )

    @property
    def source_file(self) -> str:
        return self._source_file

    @property
    def image_used(self) -> tuple[str, str]:
        """From an image: (the reference pulled, its digest), once read."""
        if self._image_used is None:
            raise CatalogError(f"{self.source_file} {self.name}: its image is not read yet")
        return self._image_used

    @property
    def uid(self) -> int:
        return self.run_as.uid

    @property
    def run_as(self) -> RunAs:
        """The user, once known (an image's is read when its build starts)."""
        if self.user is not None:
            return RunAs(self.user.name, self.user.uid)
        if self._image_user is None:
            raise CatalogError(f"{self.source_file} {self.name}: its image's user is not read yet")
        return self._image_user

    @property
    def debian_packages(self) -> tuple[str, ...]:
        return self.debian.packages

    @property
    def probe(self) -> Readiness:
        """The readiness probe (declared, or the default for the first port)."""
        return decide_probe(self.readiness, self.ports)

    @property
    def main_port(self) -> Port:
        return self.ports[0]


def read_workload(data: object, where: str, base_dir: Path) -> Workload:
    """Validate one catalog document into a Workload (paths relative to base_dir)."""
    return parse(Workload, data, where, CatalogError, {"base_dir": base_dir, "where": where})
