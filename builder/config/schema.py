"""The catalog entry and the settings file, declared once with pydantic.

These models are the input shapes, checked at the edge: unknown fields are
refused, every value that can reach a script, a Dockerfile or a manifest
passes a strict pattern, and each error names the file, the field and what
would be valid (`images/x.yaml: ports[0].name: 'HTTP' is not valid (...)`).
`models.py` and `settings.py` turn a checked entry into the frozen
dataclasses the rest of the tool uses. The same models give the JSON Schema
that `meshexp-build schema catalog|settings` prints, so that YAML-aware
editors validate and complete entries as they are typed.
"""

# No `from __future__ import annotations`: pydantic reads these annotations,
# which call the small type builders below, when each class is made.
import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from builder.config.contract import INBOUND_POLICIES
from builder.config.identity import IDENTITY_STYLES
from builder.config.validation import (
    ABS_PATH,
    ARG_TEXT,
    DEBIAN_PACKAGE,
    DNS_LABEL,
    DNS_NAME,
    ENV_NAME,
    GO_PACKAGE,
    GO_VERSION,
    GRPC_METHOD,
    IMAGE_REF,
    LABEL_KEY,
    PORT_NAME,
    SHA256,
    SPDX_EXPRESSION,
    USER_NAME,
)
from builder.core.errors import MeshexpError

M = TypeVar("M", bound=BaseModel)
SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"
APP_PROTOCOLS = ("http", "grpc", "opaque")
SPIRE_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
PLATFORMS = ("linux/amd64", "linux/arm64")
TOPOLOGIES = ("demo", "production")
IPTABLES_MODES = ("legacy", "nft")

# ------------------------------------------------------------------ value types


def _as_text(value: object) -> str:
    """YAML numbers read as text (`8000` -> "8000"); booleans and lists are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


def Text(description: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> Any:
    """A string checked against `pattern` (or free of control characters)."""

    def check(value: str) -> str:
        if pattern is not None and not pattern.match(value):
            raise ValueError(f"{value!r} is not valid ({hint})")
        if pattern is None and not ARG_TEXT.match(value):
            raise ValueError(f"{value!r} holds a control character (newline, tab...); remove it")
        return value

    schema: dict[str, Any] = {"type": "string", "description": description}
    if pattern is not None:
        schema["pattern"] = pattern.pattern
    return Annotated[str, BeforeValidator(_as_text), AfterValidator(check), WithJsonSchema(schema)]


def Whole(description: str, low: int, high: int) -> Any:
    """A whole number in [low, high] (YAML `"8000"` is text, not a number)."""

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low}-{high})")
        return value

    schema = {"type": "integer", "minimum": low, "maximum": high, "description": description}
    return Annotated[int, BeforeValidator(check), WithJsonSchema(schema)]


def Choice(description: str, choices: tuple[str, ...]) -> Any:
    def check(value: object) -> str:
        text = _as_text(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    schema = {"enum": list(choices), "description": description}
    return Annotated[str, BeforeValidator(check), WithJsonSchema(schema)]


def Flag(description: str) -> Any:
    def check(value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    return Annotated[
        bool,
        BeforeValidator(check),
        WithJsonSchema({"type": "boolean", "description": description}),
    ]


def _a_list(value: object) -> list[Any]:
    """Our message for a non-list, before pydantic reads the items."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


class Entry(BaseModel):
    """Unknown fields refused (by name, with the valid ones listed); frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: object) -> object:
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(key) for key in data if key not in cls.model_fields)
        if unknown:
            raise ValueError(
                f"unknown field {unknown[0]!r}; valid fields are: {', '.join(cls.model_fields)}"
            )
        return data


# ------------------------------------------------------------------- sources


class ImageSourceEntry(Entry):
    """A file copied out of a container image by a build stage."""

    ref: Text("an image reference", IMAGE_REF, "an image reference like ghcr.io/org/name:tag")
    path: Text("the file's path inside the image", ABS_PATH, "an absolute path inside the image")


class FileSourceEntry(Entry):
    """A binary on disk (relative to the file that names it)."""

    path: Text("a path to the binary, relative to this file")


class UrlSourceEntry(Entry):
    """A binary downloaded over HTTPS, checked against its sha256 before use."""

    url: Text("an https:// URL")
    sha256: Text("the file's sha256", SHA256, "64 lowercase hex digits")

    @model_validator(mode="after")
    def _https(self) -> Self:
        if not self.url.startswith("https://"):
            raise ValueError(f"url: {self.url!r} must start with https://")
        return self


class GoSourceEntry(Entry):
    """A Go package built on the host: from the Go module proxy, or a local module."""

    package: Text("a Go package", GO_PACKAGE, "a Go import path or ./relative package")
    version: (
        Text("a module version from the Go proxy", GO_VERSION, "a semver tag like v1.13.3") | None
    ) = None
    local: Text("a local module folder, relative to this file") | None = None
    cgo: Flag("build with cgo (SPIRE needs it)") = False

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

    name: Text(
        "the port's name",
        PORT_NAME,
        "an IANA service name: lowercase letters, digits, '-', at most 15",
    )
    port: Whole("the port number", 1, 65535)
    protocol: Choice("the transport", ("TCP", "UDP", "SCTP")) = "TCP"
    app_protocol: Choice(
        "what the port speaks; `check` probes it so: http (GET /), grpc (a call), "
        "opaque (a connection)",
        APP_PROTOCOLS,
    ) = "http"
    grpc_method: (
        Text(
            "the gRPC method check calls (default: the standard health check)",
            GRPC_METHOD,
            "a full gRPC method name like /ColorService/Center",
        )
        | None
    ) = None

    @model_validator(mode="after")
    def _method_needs_grpc(self) -> Self:
        if self.grpc_method is not None and self.app_protocol != "grpc":
            raise ValueError("grpc_method: only a port with app_protocol: grpc takes a grpc_method")
        return self


class UserEntry(Entry):
    """The workload's own non-root user (not the proxy's 2102 or SPIRE's 2103)."""

    name: Text("a Linux user name", USER_NAME, "a Linux user name")
    uid: Whole("its UID", 1000, 65533)


class BinaryEntry(Entry):
    """One program of the workload, copied to /opt/workload/bin/<name>."""

    name: Text("the binary's file name", DNS_LABEL, "lowercase letters, digits, '-'")
    source: SourceEntry = Field(description="where it comes from online")
    # One source, or alternatives tried in order: see json_schema() for its schema.
    offline: Annotated[list[SourceEntry] | None, BeforeValidator(_alternatives)] = None


DebianPackage = Text("a Debian package", DEBIAN_PACKAGE, "a Debian package name")


class DebianEntry(Entry):
    packages: Annotated[
        list[DebianPackage],
        BeforeValidator(_a_list),
    ] = []


Argument = Text("one argument")
Command = Annotated[list[Argument], BeforeValidator(_a_list)]


class DispatchEntry(Entry):
    """Pick the command at start from an environment variable (like FACES_SERVICE)."""

    env: Text("the variable that picks", ENV_NAME, "an environment variable name")
    default: Text("the choice when the variable is unset")
    commands: dict[Text("a choice", DNS_LABEL, "a DNS label"), Command]

    @model_validator(mode="after")
    def _default_is_a_command(self) -> Self:
        if not self.commands:
            raise ValueError("commands: expected a mapping of choice -> command list")
        if self.default not in self.commands:
            raise ValueError(
                f"default: {self.default!r} is not one of the commands: {', '.join(self.commands)}"
            )
        return self


def _env_names(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of NAME: value")
    for name in value:
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid variable name (letters, digits, '_')")
        if name.startswith(("LINKERD2_PROXY_", "MESHEXP_")):
            raise ValueError(f"{name!r} is reserved for the proxy and bootstrap; rename it")
    return value


Policy = Choice("the proxy's default inbound policy", INBOUND_POLICIES)


class WorkloadEntry(Entry):
    """One catalog entry: a workload and what runs beside the proxy for it."""

    name: Text(
        "the workload's name (ExternalWorkload, image, SPIFFE ID)",
        DNS_LABEL,
        "a DNS-1123 label: lowercase letters, digits, '-', at most 63",
    )
    namespace: Text("its Kubernetes namespace", DNS_LABEL, "a DNS-1123 label")
    description: Text("one line for people") = ""
    licenses: Text(
        "an SPDX expression for the image's licenses label",
        SPDX_EXPRESSION,
        "an SPDX license expression, e.g. Apache-2.0 or MIT OR Apache-2.0",
    ) = ""
    ports: Annotated[list[PortEntry], BeforeValidator(_a_list)] = Field(
        description="the ports it listens on; the first is the one the bootstrap waits for"
    )
    user: UserEntry
    binaries: Annotated[list[BinaryEntry], BeforeValidator(_a_list)] = []
    debian: DebianEntry = DebianEntry()
    command: Command = []
    dispatch: DispatchEntry | None = None
    env: Annotated[dict[str, Text("a value")], BeforeValidator(_env_names)] = {}
    inbound_default_policy: (
        Choice("the proxy's default inbound policy", INBOUND_POLICIES) | None
    ) = None

    @model_validator(mode="after")
    def _whole_entry(self) -> Self:
        if not self.ports:
            raise ValueError("ports: declare at least one port")
        names = [port.name for port in self.ports]
        if len(set(names)) != len(names):
            raise ValueError(f"ports: port names must be unique, got {names}")
        if bool(self.command) == bool(self.dispatch):
            raise ValueError("give either command or dispatch (exactly one)")
        if not self.binaries and not self.debian.packages:
            raise ValueError(
                "give binaries or debian.packages: the workload must come from somewhere"
            )
        return self


# ------------------------------------------------------------------ settings


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [int(p) if p.isdigit() else p for p in value.replace(" ", "").split(",") if p]
    return value


def _comma_text_list(value: object) -> object:
    if isinstance(value, str):
        return [part for part in value.replace(" ", "").split(",") if part]
    return value


def _pairs(what: str) -> Callable[[object], object]:
    """A mapping, or NAME=VALUE items (as the repeatable flags give them)."""

    def read(value: object) -> object:
        if isinstance(value, list | tuple):
            pairs = {}
            for item in value:
                name, sep, text = str(item).partition("=")
                if not sep:
                    raise ValueError(f"{item!r} is not {what}")
                pairs[name] = text
            return pairs
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping or {what} items")
        return {str(k): v for k, v in value.items()}

    return read


def _folder_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


PRIVATE_NETWORKS = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8")


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a network in CIDR form (like 10.0.0.0/8 or fd00::/8, host bits zero)"
        ) from None


Network = Annotated[
    str,
    BeforeValidator(_as_text),
    AfterValidator(_network),
    WithJsonSchema({"type": "string", "description": "a network in CIDR form, like 10.0.0.0/8"}),
]
NetworkList = Annotated[list[Network], BeforeValidator(_comma_text_list)]
PortNumber = Whole("a port", 1, 65535)
PortList = Annotated[list[PortNumber], BeforeValidator(_comma_list)]


def _label_name(name: str) -> str:
    if not LABEL_KEY.match(name) or name.startswith("io.meshexp."):
        raise ValueError(
            f"{name!r} is not a label name of ours to set (lowercase reverse-DNS like "
            "org.example.team; io.meshexp.* is the tool's own)"
        )
    return name


LabelName = Annotated[
    str,
    AfterValidator(_label_name),
    WithJsonSchema(
        {"type": "string", "pattern": LABEL_KEY.pattern, "not": {"pattern": "^io\\.meshexp\\."}}
    ),
]


class SettingsEntry(Entry):
    """The settings file (meshexp.yaml); flags of the same names override it."""

    linkerd_version: Text("Linkerd release, e.g. 2.18 or edge-24.2.5") | None = None
    proxy_version: Text("override the proxy version, e.g. v2.294.0") | None = None
    spire_version: Text("SPIRE version", SPIRE_VERSION, "like 1.13.3, no leading v") | None = None
    trust_domain: Text("SPIFFE trust domain", DNS_NAME, "a DNS name, lowercase") | None = None
    offline: Flag("no container registry: Debian base, Go sources, a proxy file") | None = None
    base_image: Text("base image reference", IMAGE_REF, "an image reference") | None = None
    topology: Choice("SPIRE topology", TOPOLOGIES) | None = None
    iptables_mode: Choice("iptables backend", IPTABLES_MODES) | None = None
    proxy_uid: Whole("UID the proxy runs as", 1000, 65533) | None = None
    spire_uid: Whole("UID SPIRE runs as", 1000, 65533) | None = None
    inbound_ports_to_ignore: Annotated[list[PortNumber] | None, BeforeValidator(_comma_list)] = None
    outbound_ports_to_ignore: Annotated[list[PortNumber] | None, BeforeValidator(_comma_list)] = (
        None
    )
    inbound_default_policy: Choice("default inbound policy", INBOUND_POLICIES) | None = None
    identity: (
        Choice(
            "the names in a workload's SVID: namespaced (the default) or the walk-through's",
            IDENTITY_STYLES,
        )
        | None
    ) = None
    profile_networks: NetworkList | None = Field(
        default=None,
        description="networks whose addresses the proxy resolves through the destination "
        "controller, so that direct connections to meshed workloads get mTLS",
    )
    image_name: Text("image name pattern, e.g. registry/{workload}") | None = None
    tag: Text("tag pattern, e.g. linkerd-{linkerd}") | None = None
    platform: Choice("target platform", PLATFORMS) | None = None
    platforms: Annotated[
        list[Choice("a platform of a multi-platform image", PLATFORMS)] | None,
        BeforeValidator(_comma_text_list),
    ] = Field(default=None, description="the platforms `publish` makes one image for")
    proxy_files: Annotated[
        dict[Choice("a platform", PLATFORMS), Text("a file")] | None,
        BeforeValidator(_pairs("PLATFORM=FILE")),
    ] = Field(default=None, description="PLATFORM: FILE, the proxy binary for that platform")
    spire_multicall: Flag("SPIRE server, agent and certcheck in one binary") | None = None
    proxy_source: SourceEntry | None = None
    spire_server_source: SourceEntry | None = None
    spire_agent_source: SourceEntry | None = None
    labels: Annotated[
        dict[LabelName, Text("a label value")] | None,
        BeforeValidator(_pairs("KEY=VALUE")),
    ] = None
    catalog: Annotated[list[Text("a folder")] | None, BeforeValidator(_folder_list)] = None
    binaries: Annotated[
        dict[
            Text("a catalog binary name", DNS_LABEL, "lowercase letters, digits, '-'"),
            Text("a file"),
        ]
        | None,
        BeforeValidator(_pairs("NAME=PATH")),
    ] = Field(default=None, description="NAME: FILE, over the catalog's sources for NAME")


# ------------------------------------------------------------------- parsing


def _where(location: tuple[int | str, ...]) -> str:
    """("ports", 0, "name") -> "ports[0].name"; pydantic's own tags are dropped."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in part:  # pydantic's validator tags, like function-after[check()]
            continue
        else:
            text += f".{part}" if text else part
    return text


def parse(model: type[M], data: object, where: str, error: type[MeshexpError]) -> M:
    """Validate `data`; the first problem becomes `error("file: field: message")`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required"
        field = _where(tuple(problem["loc"]))
        named = FIELD_FIRST.match(message)
        if named:  # a model's own check names its field first: "ports: ..."
            field = f"{field}.{named[1]}" if field else named[1]
            message = message[named.end() :]
        if not field:
            raise error(f"{where} {message}") from None
        joiner = " " if where.endswith(":") else "."
        raise error(f"{where}{joiner}{field}: {message}") from None


FIELD_FIRST = re.compile(r"^([a-z_]+): ")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a catalog entry (`catalog`) or of the settings file."""
    models: dict[str, type[BaseModel]] = {"catalog": WorkloadEntry, "settings": SettingsEntry}
    model = models[kind]
    schema = model.model_json_schema()
    binary = schema.get("$defs", {}).get("BinaryEntry")
    if binary is not None:  # what the alternatives' reader also accepts: one mapping
        source = {"$ref": "#/$defs/SourceEntry"}
        binary["properties"]["offline"] = {
            "description": "where it comes from offline: one source, or a list of "
            "alternatives tried in order (the first that can be had is used)",
            "anyOf": [source, {"type": "array", "items": source, "minItems": 1}],
        }
    titles = {"catalog": "meshexp-build catalog entry", "settings": "meshexp-build settings"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID.format(kind=kind),
        **schema,
        "title": titles[kind],
    }
