"""The catalog entry and the component sources: one set of pydantic models that both
check a file and serve the rest of the tool, frozen once checked.

Unknown fields are refused, every value that can reach a script, a Dockerfile or a
manifest passes a strict pattern, and each error names the file, the field and what
would be valid (`images/x.yaml: ports[0].name: 'HTTP' is not valid (...)`); the value
types and their words are builder.config.types'. The same models give the JSON Schema
that `meshexp-build schema catalog|settings` prints (builder.config.editor_schema).

Paths in a source are read relative to the file that names them: `parse` is given
`context={"base_dir": FOLDER}` and they are resolved as they are checked.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import core_schema

from builder.config.contract import InboundPolicy
from builder.config.types import (
    WORDED,
    AppProtocol,
    BinaryName,
    Choice,
    ChoiceName,
    DebianPackage,
    DnsLabel,
    Entry,
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
    Pattern,
    PortName,
    PortNumber,
    PositiveSeconds,
    Range,
    Seconds,
    Sha256,
    SpdxExpression,
    SuccessThreshold,
    Threshold,
    Uid,
    UserName,
    WorkloadName,
    as_text,
    parse,
    refuse,
)
from builder.config.validation import ENV_NAME, PORT_NAME, shown
from builder.core.errors import CatalogError

SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"

# --------------------------------------------------------------------------- sources


def _resolved(value: object, info: ValidationInfo) -> object:
    """A path as written, relative to the file that names it (the parse's base_dir)."""
    if isinstance(value, str):
        base = (info.context or {}).get("base_dir", Path.cwd())
        return (Path(base) / value).resolve()
    return value


def _path_text(value: object) -> object:
    """A path given by the tool itself stays as it is; one written in a file is text."""
    return value if isinstance(value, Path) else as_text(value)


LocalPath = Annotated[
    Path,
    BeforeValidator(_resolved),
    BeforeValidator(_path_text),
    WithJsonSchema({"type": "string"}),
]


class ImageSource(Entry):
    """A file copied out of a container image by a build stage."""

    kind: ClassVar[str] = "image"
    ref: ImageRef = Field(description="an image reference")
    path: ImagePath = Field(description="the file's path inside the image")


class FileSource(Entry):
    """A binary on disk (relative to the file that names it)."""

    kind: ClassVar[str] = "file"
    path: LocalPath = Field(description="a path to the binary, relative to this file")


class UrlSource(Entry):
    """A binary downloaded over HTTPS, checked against its sha256 before use."""

    kind: ClassVar[str] = "url"
    url: FreeText = Field(description="an https:// URL")
    sha256: Sha256 = Field(description="the file's sha256")

    @model_validator(mode="after")
    def _https(self) -> Self:
        if not self.url.startswith("https://"):
            refuse(f"url: {shown(self.url)} must start with https://")
        return self


class GoSource(Entry):
    """A Go package built on the host: from the Go module proxy, or a local module."""

    kind: ClassVar[str] = "go"
    # SPIRE with only the plugins our configs name (builder/build/spire_plugins.py):
    # the tool's own choice (TrimmedGoSource), never a catalog's.
    trim_spire: ClassVar[bool] = False
    package: GoPackage = Field(description="a Go package")
    version: GoVersion | None = Field(None, description="a module version from the Go proxy")
    local: LocalPath | None = Field(
        None, description="a local module folder, relative to this file"
    )
    cgo: Flag = Field(False, description="build with cgo (SPIRE needs it)")

    @model_validator(mode="after")
    def _one_origin(self) -> Self:
        if (self.version is None) == (self.local is None):
            refuse(
                "give either version (a module from the Go proxy) or local "
                "(a module folder), not both or neither"
            )
        return self

    def describe(self) -> str:
        trimmed = ", configured SPIRE plugins only" if self.trim_spire else ""
        if self.version:
            return f"{self.package}@{self.version}" + (f" ({trimmed[2:]})" if trimmed else "")
        return f"{self.package} (local module {self.local.name if self.local else '?'}{trimmed})"


class TrimmedGoSource(GoSource):
    """SPIRE built by the tool with only the plugins its configs name."""

    trim_spire: ClassVar[bool] = True


SOURCE_KINDS = ("image", "file", "url", "go")
SOURCE_TITLE = "Source"


@dataclass(frozen=True)
class _WrittenUnder:
    """A source as a catalog writes it, `{kind: {...}}`: the mapping under the kind is
    the source (the JSON Schema says so too)."""

    kind: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            self._inner,
            handler(source),
            serialization=core_schema.wrap_serializer_function_ser_schema(self._outer),
        )

    def _outer(self, value: object, serialize: core_schema.SerializerFunctionWrapHandler) -> object:
        return {self.kind: serialize(value)}

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {self.kind: handler(schema)},
            "required": [self.kind],
            "additionalProperties": False,
        }

    def _inner(self, value: object) -> object:
        return value[self.kind] if isinstance(value, dict) else value


class _OneKind:
    """The JSON Schema of a source as it is written: one mapping with exactly one of
    the kinds (builder.config.editor_schema names it `$defs/Source`)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        arms = handler.resolve_ref_schema(handler(schema)).get("oneOf", [])
        return {
            "title": SOURCE_TITLE,
            "type": "object",
            "properties": {k: v for arm in arms for k, v in arm["properties"].items()},
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
        }


def _source_kind(value: object) -> str | None:
    if isinstance(value, ImageSource | FileSource | UrlSource | GoSource):
        return value.kind
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SOURCE_KINDS:
        return str(next(iter(value)))
    return None


def _a_mapping(value: object) -> object:
    """A source is a mapping of one known kind (a misspelt kind is named as such)."""
    if not isinstance(value, dict | ImageSource | FileSource | UrlSource | GoSource):
        refuse(f"expected a mapping, got {type(value).__name__}")
    unknown = (
        sorted(str(key) for key in value if key not in SOURCE_KINDS)
        if isinstance(value, dict)
        else []
    )
    if unknown:
        refuse(f"unknown field {unknown[0]!r}; valid fields are: {', '.join(SOURCE_KINDS)}")
    return value


BinarySource = Annotated[
    Annotated[ImageSource, _WrittenUnder("image"), Tag("image")]
    | Annotated[FileSource, _WrittenUnder("file"), Tag("file")]
    | Annotated[UrlSource, _WrittenUnder("url"), Tag("url")]
    | Annotated[GoSource, _WrittenUnder("go"), Tag("go")],
    Discriminator(
        _source_kind,
        custom_error_type=WORDED,
        custom_error_message=f"give exactly one source kind of: {', '.join(SOURCE_KINDS)}",
    ),
    BeforeValidator(_a_mapping),
    _OneKind(),
]
Source = ImageSource | FileSource | UrlSource | GoSource


@dataclass(frozen=True)
class FirstOf:
    """Alternatives tried in order (a catalog list): the first that can be had is
    used, and the image's labels name it. Lets an entry prefer the real program
    (from the Go module proxy) and fall back to a compatible build.
    """

    sources: tuple[Source, ...]
    kind: str = "first-of"


ComponentSource = Source | FirstOf


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


def read_source(data: object, where: str, base_dir: Path, error: type[CatalogError]) -> Source:
    """Read a `{kind: {...}}` mapping with exactly one kind."""
    return parse(SourceField, {"source": data}, where, error, {"base_dir": base_dir}).source


class SourceField(Entry):
    """One source alone (a flag's or a test's), read as a catalog reads it."""

    source: BinarySource


def _alternatives(value: object) -> object:
    if isinstance(value, list) and not value:
        refuse("give one source, or a list of alternatives tried in order")
    return value if isinstance(value, list | tuple) else [value]


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


class Binary(Entry):
    """One program of the workload, installed at /opt/workload/bin/<name>."""

    name: BinaryName = Field(description="the binary's file name")
    source: BinarySource = Field(description="where it comes from online")
    # One source, or alternatives tried in order: see editor_schema for its schema.
    offline: Annotated[tuple[BinarySource, ...] | None, BeforeValidator(_alternatives)] = None

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


def _port_ref(value: object) -> object:
    """A port of the entry by its name or its number, each held to its own rule."""
    if isinstance(value, int) and not isinstance(value, bool):
        return PORT_RANGE.check(value)
    if isinstance(value, str):
        return PORT_NAME_RULE.check(as_text(value))
    refuse(f"expected a port's name or number, got {shown(value)}")


PORT_RANGE = Range(1, 65535)
PORT_NAME_RULE = Pattern(PORT_NAME, "a port's name, or a number from 1 to 65535")
PortRef = Annotated[
    int | str,
    BeforeValidator(_port_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": PORT_NAME.pattern},
            ]
        }
    ),
]


class HttpProbe(Entry):
    """GET a path on the workload's own port; passes on 200-399, or the status given."""

    path: HttpPath = Field("/", description="the path (and query) to GET")
    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    status: HttpStatus | None = Field(None, description="the one status that passes")


class GrpcProbe(Entry):
    """One gRPC call with an empty message: the standard health service must say SERVING,
    or the named method answer OK."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    method: GrpcMethod | None = Field(
        None, description="the method to call (default: /grpc.health.v1.Health/Check)"
    )


class TcpProbe(Entry):
    """A connection to the workload's port is accepted."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")


class ExecProbe(Entry):
    """A command in the container, run as the workload's UID, exits 0."""

    command: tuple[FreeText, ...] = Field(description="the command and its arguments (no shell)")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.command:
            refuse("command: give the program to run and its arguments")
        return self


PROBE_KINDS = ("http", "grpc", "tcp", "exec")
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class ProbeEntry(Entry):
    """The workload's readiness probe as an entry declares it, with Kubernetes' semantics
    and defaults (`Workload.probe` is what it decides, with the entry's ports)."""

    http: HttpProbe | None = None
    grpc: GrpcProbe | None = None
    tcp: TcpProbe | None = None
    exec: ExecProbe | None = None
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
            refuse(f"give one probe kind of {', '.join(PROBE_KINDS)}, not {given}")
        return self


@dataclass(frozen=True)
class Readiness:
    """The probe decided: the declared one with its port's number, or the default for
    the first port. Run inside the container by meshexp-probe (go/internal/probe):
    Docker's HEALTHCHECK, the bootstrap's "workload ready", the keeper's Ready. `kind`
    is http, grpc, tcp or exec."""

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
    ports: tuple[Port, ...] = Field(
        description="the ports it listens on; the first is the one the bootstrap waits for"
    )
    user: User
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

    @model_validator(mode="after")
    def _whole_entry(self, info: ValidationInfo) -> Self:
        if not self.ports:
            refuse("ports: declare at least one port")
        names = [port.name for port in self.ports]
        if len(set(names)) != len(names):
            refuse(f"ports: port names must be unique, got {names}")
        if bool(self.command) == bool(self.dispatch):
            refuse("give either command or dispatch (exactly one)")
        if self.readiness is not None:
            self._probe_port_is_declared(self.readiness)
        if not self.binaries and not self.debian.packages:
            refuse("give binaries or debian.packages: the workload must come from somewhere")
        self._source_file = str((info.context or {}).get("where", ""))
        return self

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
    def uid(self) -> int:
        return self.user.uid

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
