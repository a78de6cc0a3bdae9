"""The value types of the catalog and the settings file, each saying in its own words
what would be valid, and `parse`, which turns pydantic's first error into our one line:
the file, the field and the message (`images/x.yaml: ports[0].name: 'HTTP' is not valid
(...)`).

Each constrained type raises its message itself, as pydantic's custom error
(`PydanticCustomError`), with what it knows where it is declared: a pattern and its
hint, a range, a set of choices. `parse` only places the message: it never looks the
type up in the model again. Patterns are applied with `fullmatch` (Python's `$` lets a
final newline through) and published in the JSON Schema as written.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from builder.config.validation import (
    ABS_PATH,
    CONTROL,
    DEBIAN_PACKAGE,
    DNS_LABEL,
    DNS_NAME,
    ENV_NAME,
    GO_PACKAGE,
    GO_VERSION,
    GRPC_METHOD,
    IMAGE_REF,
    PORT_NAME,
    SHA256,
    SPDX_EXPRESSION,
    USER_NAME,
    shown,
)
from builder.core.errors import MeshexpError

M = TypeVar("M", bound=BaseModel)
# pydantic's error type for every message worded here.
WORDED = "meshexp"


def refuse(message: str) -> NoReturn:
    """Fail validation with `message` as the user reads it (braces in it stay as they are:
    the message is the template's one value)."""
    raise PydanticCustomError(WORDED, "{message}", {"message": message})


class Entry(BaseModel):
    """A mapping of a catalog entry or the settings file: frozen, unknown fields refused.

    An unknown field is reported before any error inside the mapping (as one reads a
    file: a misspelt key first), naming the valid fields. Python's `re` checks the
    patterns (some look ahead, which pydantic's default engine does not support).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, regex_engine="python-re", serialize_by_alias=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: object) -> object:
        if isinstance(data, dict):
            names = [field.alias or name for name, field in cls.model_fields.items()]
            unknown = sorted(str(key) for key in data if key not in names)
            if unknown:
                known = ", ".join(names)
                refuse(f"unknown field {unknown[0]!r}; valid fields are: {known}")
        return data


def as_text(value: object) -> str:
    """YAML numbers read as text (`8000` -> "8000"); booleans and lists are refused, and
    so is a control character (a newline is how a value escapes its line), before any
    pattern sees the value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        refuse(f"expected text, got {type(value).__name__}")
    return _no_control_characters(str(value))


def _no_control_characters(value: str) -> str:
    if CONTROL.search(value):
        refuse(f"{shown(value)} holds a control character (newline, tab...); remove it")
    return value


AsText = BeforeValidator(as_text)

# Free text: any characters but control characters (newline, tab...).
FreeText = Annotated[str, AfterValidator(_no_control_characters), AsText]


@dataclass(frozen=True)
class Pattern:
    """Text that matches `regex` whole; else "'x' is not valid (<hint>)". The JSON
    Schema publishes the pattern as written."""

    regex: re.Pattern[str]
    hint: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {**handler(schema), "pattern": self.regex.pattern}

    def check(self, value: str) -> str:
        if not self.regex.fullmatch(value):
            refuse(f"{shown(value)} is not valid ({self.hint})")
        return value


@dataclass(frozen=True)
class Range:
    """An integer from `low` to `high` as YAML writes one (not a boolean, not text)."""

    low: int
    high: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {**handler(schema), "minimum": self.low, "maximum": self.high}

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            refuse(f"expected a whole number from {self.low} to {self.high}, got {shown(value)}")
        if not self.low <= value <= self.high:
            refuse(f"{shown(value)} is out of range ({self.low}-{self.high})")
        return value


@dataclass(frozen=True)
class Choice:
    """One of the values of the Literal it annotates, read as text (`8000` -> "8000")."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        values = tuple(str(value) for value in get_args(source))

        def check(value: object) -> str:
            text = as_text(value)
            if text not in values:
                refuse(f"{shown(text)} is not one of: {', '.join(values)}")
            return text

        return core_schema.no_info_before_validator_function(check, handler(source))


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        refuse(f"expected true or false, got {shown(value)}")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]

# The constraint first, AsText last: AsText runs first (it wraps what precedes it).
DnsLabel = Annotated[str, Pattern(DNS_LABEL, "a DNS-1123 label"), AsText]
WorkloadName = Annotated[
    str, Pattern(DNS_LABEL, "a DNS-1123 label: lowercase letters, digits, '-', at most 63"), AsText
]
BinaryName = Annotated[str, Pattern(DNS_LABEL, "lowercase letters, digits, '-'"), AsText]
ChoiceName = Annotated[str, Pattern(DNS_LABEL, "a DNS label"), AsText]
PortName = Annotated[
    str,
    Pattern(PORT_NAME, "an IANA service name: lowercase letters, digits, '-', at most 15"),
    AsText,
]
UserName = Annotated[str, Pattern(USER_NAME, "a Linux user name"), AsText]
EnvName = Annotated[str, Pattern(ENV_NAME, "an environment variable name"), AsText]
DebianPackage = Annotated[str, Pattern(DEBIAN_PACKAGE, "a Debian package name"), AsText]
ImageRef = Annotated[
    str, Pattern(IMAGE_REF, "an image reference like ghcr.io/org/name:tag"), AsText
]
BaseImageRef = Annotated[str, Pattern(IMAGE_REF, "an image reference"), AsText]
ImagePath = Annotated[str, Pattern(ABS_PATH, "an absolute path inside the image"), AsText]
Sha256 = Annotated[str, Pattern(SHA256, "64 lowercase hex digits"), AsText]
GoPackage = Annotated[str, Pattern(GO_PACKAGE, "a Go import path or ./relative package"), AsText]
GoVersion = Annotated[str, Pattern(GO_VERSION, "a semver tag like v1.13.3"), AsText]
GrpcMethod = Annotated[
    str, Pattern(GRPC_METHOD, "a full gRPC method name like /ColorService/Center"), AsText
]
SpdxExpression = Annotated[
    str,
    Pattern(SPDX_EXPRESSION, "an SPDX license expression, e.g. Apache-2.0 or MIT OR Apache-2.0"),
    AsText,
]
SpireVersion = Annotated[
    str, Pattern(re.compile(r"^\d+\.\d+\.\d+$"), "like 1.13.3, no leading v"), AsText
]
TrustDomain = Annotated[str, Pattern(DNS_NAME, "a DNS name, lowercase"), AsText]
# An HTTP probe's path (and query): reaches only a JSON file, still kept to URL characters.
HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,200}$")
HttpPath = Annotated[
    str, Pattern(HTTP_PATH, "an absolute URL path like /healthz (URL characters)"), AsText
]

PortNumber = Annotated[int, Range(1, 65535)]
HttpStatus = Annotated[int, Range(100, 599)]
Seconds = Annotated[int, Range(0, 3600)]
PositiveSeconds = Annotated[int, Range(1, 3600)]
Threshold = Annotated[int, Range(1, 100)]
# Docker keeps a container's last 5 health results, which the keeper counts passes in.
SuccessThreshold = Annotated[int, Range(1, 5)]
Uid = Annotated[int, Range(1000, 65533)]

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

# ------------------------------------------------------------------- parsing

# pydantic's words for the shape of a value, which no type of ours declares.
SHAPES: dict[str, Callable[[Any], str]] = {
    "missing": lambda _: "is required",
    "model_type": lambda value: f"expected a mapping, got {type(value).__name__}",
    "model_attributes_type": lambda value: f"expected a mapping, got {type(value).__name__}",
    "dict_type": lambda value: f"expected a mapping, got {type(value).__name__}",
    "list_type": lambda value: f"expected a list, got {type(value).__name__}",
    "tuple_type": lambda value: f"expected a list, got {type(value).__name__}",
}


def _where(location: tuple[int | str, ...]) -> str:
    """("ports", 0, "name") -> "ports[0].name"; pydantic's own tags are dropped."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in part:  # pydantic's tags, like function-after[check()] or [key]
            continue
        else:
            # A key as written may hold anything (a newline): shown quoted, then.
            shown = part if re.fullmatch(r"[\w./-]{1,80}", part, re.ASCII) else repr(part[:60])
            text += f".{shown}" if text else shown
    return text


def _message(problem: Any) -> str:
    """Our words for one of pydantic's errors: a type's own, or the shape's."""
    if problem["type"] == WORDED:
        return str(problem.get("ctx", {}).get("message", problem["msg"]))
    shape = SHAPES.get(problem["type"])
    if shape is not None:
        return shape(problem.get("input"))
    return str(problem["msg"]).removeprefix("Value error, ")


FIELD_FIRST = re.compile(r"^([a-z_]+): ")


def parse(
    model: type[M],
    data: object,
    where: str,
    error: type[MeshexpError],
    context: dict[str, Any] | None = None,
) -> M:
    """Validate `data`; the first problem becomes `error("file: field: message")`."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        message = _message(problem)
        field = _where(tuple(problem["loc"]))
        named = FIELD_FIRST.match(message)
        if named:  # a model's own check names its field first: "ports: ..."
            field = f"{field}.{named[1]}" if field else named[1]
            message = message[named.end() :]
        if not field:
            raise error(f"{where} {message}") from None
        joiner = " " if where.endswith(":") else "."
        raise error(f"{where}{joiner}{field}: {message}") from None
