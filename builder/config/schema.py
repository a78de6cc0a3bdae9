"""The catalog entry and the component sources, declared once with pydantic (the
settings file is builder.config.settings_schema's, on the same base).

These models are the input shapes, checked at the edge: unknown fields are
refused, every value that can reach a script, a Dockerfile or a manifest
passes a strict pattern, and each error names the file, the field and what
would be valid (`images/x.yaml: ports[0].name: 'HTTP' is not valid (...)`).
`models.py` and `settings.py` turn a checked entry into the frozen
dataclasses the rest of the tool uses. The same models give the JSON Schema
that `meshexp-build schema catalog|settings` prints (builder.config.editor_schema),
so that YAML-aware editors validate and complete entries as they are typed. The
value types and the error messages are builder.config.types'.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from typing import Annotated, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from builder.config.contract import InboundPolicy
from builder.config.types import (
    AsText,
    BinaryName,
    ChoiceName,
    DebianPackage,
    DnsLabel,
    EnvName,
    Flag,
    FreeText,
    GoPackage,
    GoVersion,
    GrpcMethod,
    HttpPath,
    HttpStatus,
    ImagePath,
    ImageRef,
    PortName,
    PortNumber,
    PositiveSeconds,
    Seconds,
    Sha256,
    SpdxExpression,
    SuccessThreshold,
    Threshold,
    Uid,
    UserName,
    WorkloadName,
)
from builder.config.validation import ENV_NAME, shown

SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"
AppProtocol = Literal["http", "grpc", "opaque"]
Platform = Literal["linux/amd64", "linux/arm64"]
Topology = Literal["demo", "production"]
IptablesMode = Literal["legacy", "nft"]
SpirePlugins = Literal["configured", "all"]
APP_PROTOCOLS: tuple[str, ...] = get_args(AppProtocol)
PLATFORMS: tuple[str, ...] = get_args(Platform)
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
IPTABLES_MODES: tuple[str, ...] = get_args(IptablesMode)
SPIRE_PLUGIN_CHOICES: tuple[str, ...] = get_args(SpirePlugins)


class Entry(BaseModel):
    """Unknown fields refused (pydantic's extra="forbid"; the message lists the valid ones).

    Python's `re` checks the patterns: some look ahead, which pydantic's default engine
    does not support.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")


# ------------------------------------------------------------------- sources


class ImageSourceEntry(Entry):
    """A file copied out of a container image by a build stage."""

    ref: ImageRef = Field(description="an image reference")
    path: ImagePath = Field(description="the file's path inside the image")


class FileSourceEntry(Entry):
    """A binary on disk (relative to the file that names it)."""

    path: FreeText = Field(description="a path to the binary, relative to this file")


class UrlSourceEntry(Entry):
    """A binary downloaded over HTTPS, checked against its sha256 before use."""

    url: FreeText = Field(description="an https:// URL")
    sha256: Sha256 = Field(description="the file's sha256")

    @model_validator(mode="after")
    def _https(self) -> Self:
        if not self.url.startswith("https://"):
            raise ValueError(f"url: {shown(self.url)} must start with https://")
        return self


class GoSourceEntry(Entry):
    """A Go package built on the host: from the Go module proxy, or a local module."""

    package: GoPackage = Field(description="a Go package")
    version: GoVersion | None = Field(None, description="a module version from the Go proxy")
    local: FreeText | None = Field(None, description="a local module folder, relative to this file")
    cgo: Flag = Field(False, description="build with cgo (SPIRE needs it)")

    @model_validator(mode="before")
    @classmethod
    def _one_origin(cls, data: object) -> object:
        if isinstance(data, dict) and ("version" in data) == ("local" in data):
            raise ValueError(
                "give either version (a module from the Go proxy) or local "
                "(a module folder), not both or neither"
            )
        return data


SOURCE_KINDS = ("image", "file", "url", "go")


class SourceEntry(Entry):
    """Where a binary comes from: exactly one kind."""

    image: ImageSourceEntry | None = None
    file: FileSourceEntry | None = None
    url: UrlSourceEntry | None = None
    go: GoSourceEntry | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: object) -> object:
        if isinstance(data, dict) and len(data) != 1:
            raise ValueError(f"give exactly one source kind of: {', '.join(SOURCE_KINDS)}")
        return data

    @property
    def kind(self) -> str:
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)


def _alternatives(value: object) -> object:
    if isinstance(value, list) and not value:
        raise ValueError("give one source, or a list of alternatives tried in order")
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------- catalog


class PortEntry(Entry):
    """A port the workload listens on, and what it speaks there."""

    name: PortName = Field(description="the port's name")
    port: PortNumber = Field(description="the port number")
    protocol: Annotated[Literal["TCP", "UDP", "SCTP"], AsText] = Field(
        "TCP", description="the transport"
    )
    app_protocol: Annotated[AppProtocol, AsText] = Field(
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
            raise ValueError("grpc_method: only a port with app_protocol: grpc takes a grpc_method")
        return self


class UserEntry(Entry):
    """The workload's own non-root user (not the proxy's 2102 or SPIRE's 2103)."""

    name: UserName = Field(description="a Linux user name")
    uid: Uid = Field(description="its UID")


class BinaryEntry(Entry):
    """One program of the workload, copied to /opt/workload/bin/<name>."""

    name: BinaryName = Field(description="the binary's file name")
    source: SourceEntry = Field(description="where it comes from online")
    # One source, or alternatives tried in order: see json_schema() for its schema.
    offline: Annotated[list[SourceEntry] | None, BeforeValidator(_alternatives)] = None


class DebianEntry(Entry):
    packages: list[DebianPackage] = []


Command = list[FreeText]


class DispatchEntry(Entry):
    """Pick the command at start from an environment variable (like FACES_SERVICE)."""

    env: EnvName = Field(description="the variable that picks")
    default: FreeText = Field(description="the choice when the variable is unset")
    commands: dict[ChoiceName, Command]

    @model_validator(mode="after")
    def _default_is_a_command(self) -> Self:
        if not self.commands:
            raise ValueError("commands: expected a mapping of choice -> command list")
        if self.default not in self.commands:
            raise ValueError(
                f"default: {shown(self.default)} is not one of the commands: "
                f"{', '.join(self.commands)}"
            )
        return self


PortRef = PortNumber | PortName


class HttpProbeEntry(Entry):
    """GET a path on the workload's own port; passes on 200-399, or the status given."""

    path: HttpPath = Field("/", description="the path (and query) to GET")
    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    status: HttpStatus | None = Field(None, description="the one status that passes")


class GrpcProbeEntry(Entry):
    """One gRPC call with an empty message: the standard health service must say SERVING,
    or the named method answer OK."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    method: GrpcMethod | None = Field(
        None, description="the method to call (default: /grpc.health.v1.Health/Check)"
    )


class TcpProbeEntry(Entry):
    """A connection to the workload's port is accepted."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")


class ExecProbeEntry(Entry):
    """A command in the container, run as the workload's UID, exits 0."""

    command: list[FreeText] = Field(description="the command and its arguments (no shell)")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.command:
            raise ValueError("command: give the program to run and its arguments")
        return self


PROBE_KINDS = ("http", "grpc", "tcp", "exec")


class ReadinessEntry(Entry):
    """The workload's readiness probe, with Kubernetes' semantics and defaults."""

    http: HttpProbeEntry | None = None
    grpc: GrpcProbeEntry | None = None
    tcp: TcpProbeEntry | None = None
    exec: ExecProbeEntry | None = None
    initial_delay: Seconds = Field(0, description="seconds before failures count")
    period: PositiveSeconds = Field(10, description="seconds between probes")
    timeout: PositiveSeconds = Field(1, description="seconds one probe may take")
    success_threshold: SuccessThreshold = Field(
        1, description="passes in a row that make it ready (at most 5: Docker keeps 5)"
    )
    failure_threshold: Threshold = Field(3, description="failures in a row that make it unready")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [kind for kind in PROBE_KINDS if getattr(self, kind) is not None]
        if len(given) > 1:
            raise ValueError(f"give one probe kind of {', '.join(PROBE_KINDS)}, not {given}")
        return self


def _env_names(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of NAME: value")
    for name in value:
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError(f"{shown(name)} is not a valid variable name (letters, digits, '_')")
        if name.startswith(("LINKERD2_PROXY_", "MESHEXP_")):
            raise ValueError(f"{shown(name)} is reserved for the proxy and bootstrap; rename it")
    return value


class WorkloadEntry(Entry):
    """One catalog entry: a workload and what runs beside the proxy for it."""

    name: WorkloadName = Field(
        description="the workload's name (ExternalWorkload, image, SPIFFE ID)"
    )
    namespace: DnsLabel = Field(description="its Kubernetes namespace")
    description: FreeText = Field("", description="one line for people")
    licenses: SpdxExpression = Field(
        "", description="an SPDX expression for the image's licenses label"
    )
    ports: list[PortEntry] = Field(
        description="the ports it listens on; the first is the one the bootstrap waits for"
    )
    user: UserEntry
    binaries: list[BinaryEntry] = []
    debian: DebianEntry = DebianEntry()
    command: Command = []
    dispatch: DispatchEntry | None = None
    env: Annotated[dict[str, FreeText], BeforeValidator(_env_names)] = {}
    inbound_default_policy: Annotated[InboundPolicy, AsText] | None = Field(
        None, description="the proxy's default inbound policy"
    )
    readiness: ReadinessEntry | None = Field(
        None,
        description="the readiness probe (default: by the first port's app_protocol: http "
        "GET /, the gRPC health check or the port's grpc_method, a TCP connection)",
    )

    @model_validator(mode="after")
    def _whole_entry(self) -> Self:
        if not self.ports:
            raise ValueError("ports: declare at least one port")
        names = [port.name for port in self.ports]
        if len(set(names)) != len(names):
            raise ValueError(f"ports: port names must be unique, got {names}")
        if bool(self.command) == bool(self.dispatch):
            raise ValueError("give either command or dispatch (exactly one)")
        if self.readiness is not None:
            self._probe_port_is_declared(self.readiness)
        if not self.binaries and not self.debian.packages:
            raise ValueError(
                "give binaries or debian.packages: the workload must come from somewhere"
            )
        return self

    def _probe_port_is_declared(self, readiness: ReadinessEntry) -> None:
        probe = readiness.http or readiness.grpc or readiness.tcp
        port = getattr(probe, "port", None)
        if port is None:
            return
        known = [p.name for p in self.ports] + [str(p.port) for p in self.ports]
        if str(port) not in known:
            raise ValueError(
                f"readiness: port {shown(port)} is not one of the entry's ports "
                f"({', '.join(str(p.name) + '=' + str(p.port) for p in self.ports)})"
            )
