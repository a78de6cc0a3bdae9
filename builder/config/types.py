"""The value types of the catalog and the settings file, on pydantic's own constraints
(StringConstraints, Field(ge, le), Literal, StrictInt, StrictBool), and `parse`, which
turns pydantic's first error into our one line: the file, the field, and what would
be valid (`images/x.yaml: ports[0].name: 'HTTP' is not valid (...)`).

A constrained type carries a Hint: what a valid value looks like, for the message.
Bounds, choices and field names are read back from the model at the error's
location, so each is declared once, where the field is.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
)

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


@dataclass(frozen=True)
class Hint:
    """What a valid value of a constrained type looks like (for the error message)."""

    text: str


def _as_text(value: object) -> str:
    """YAML numbers read as text (`8000` -> "8000"); booleans and lists are refused, and
    so is a control character (a newline is how a value escapes its line), before any
    pattern sees the value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return _no_control_characters(str(value))


def _no_control_characters(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError(f"{shown(value)} holds a control character (newline, tab...); remove it")
    return value


AsText = BeforeValidator(_as_text)

# Free text: any characters but control characters (newline, tab...).
FreeText = Annotated[str, AfterValidator(_no_control_characters), AsText]


def _pattern(regex: re.Pattern[str]) -> StringConstraints:
    return StringConstraints(pattern=regex.pattern)


# The constraint first, AsText last: AsText runs before it (it wraps what precedes it),
# and the JSON Schema keeps the pattern.
DnsLabel = Annotated[str, _pattern(DNS_LABEL), Hint("a DNS-1123 label"), AsText]
WorkloadName = Annotated[
    str,
    _pattern(DNS_LABEL),
    Hint("a DNS-1123 label: lowercase letters, digits, '-', at most 63"),
    AsText,
]
BinaryName = Annotated[str, _pattern(DNS_LABEL), Hint("lowercase letters, digits, '-'"), AsText]
ChoiceName = Annotated[str, _pattern(DNS_LABEL), Hint("a DNS label"), AsText]
PortName = Annotated[
    str,
    _pattern(PORT_NAME),
    Hint("an IANA service name: lowercase letters, digits, '-', at most 15"),
    AsText,
]
UserName = Annotated[str, _pattern(USER_NAME), Hint("a Linux user name"), AsText]
EnvName = Annotated[str, _pattern(ENV_NAME), Hint("an environment variable name"), AsText]
DebianPackage = Annotated[str, _pattern(DEBIAN_PACKAGE), Hint("a Debian package name"), AsText]
ImageRef = Annotated[
    str, _pattern(IMAGE_REF), Hint("an image reference like ghcr.io/org/name:tag"), AsText
]
BaseImageRef = Annotated[str, _pattern(IMAGE_REF), Hint("an image reference"), AsText]
ImagePath = Annotated[str, _pattern(ABS_PATH), Hint("an absolute path inside the image"), AsText]
Sha256 = Annotated[str, _pattern(SHA256), Hint("64 lowercase hex digits"), AsText]
GoPackage = Annotated[
    str, _pattern(GO_PACKAGE), Hint("a Go import path or ./relative package"), AsText
]
GoVersion = Annotated[str, _pattern(GO_VERSION), Hint("a semver tag like v1.13.3"), AsText]
GrpcMethod = Annotated[
    str,
    _pattern(GRPC_METHOD),
    Hint("a full gRPC method name like /ColorService/Center"),
    AsText,
]
SpdxExpression = Annotated[
    str,
    _pattern(SPDX_EXPRESSION),
    Hint("an SPDX license expression, e.g. Apache-2.0 or MIT OR Apache-2.0"),
    AsText,
]
SpireVersion = Annotated[
    str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$"), Hint("like 1.13.3, no leading v"), AsText
]
TrustDomain = Annotated[str, _pattern(DNS_NAME), Hint("a DNS name, lowercase"), AsText]

# An HTTP probe's path (and query): reaches only a JSON file, still kept to URL characters.
HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,200}$")
HttpPath = Annotated[
    str, _pattern(HTTP_PATH), Hint("an absolute URL path like /healthz (URL characters)"), AsText
]
PortNumber = Annotated[StrictInt, annotated_types.Ge(1), annotated_types.Le(65535)]
HttpStatus = Annotated[StrictInt, annotated_types.Ge(100), annotated_types.Le(599)]
Seconds = Annotated[StrictInt, annotated_types.Ge(0), annotated_types.Le(3600)]
PositiveSeconds = Annotated[StrictInt, annotated_types.Ge(1), annotated_types.Le(3600)]
Threshold = Annotated[StrictInt, annotated_types.Ge(1), annotated_types.Le(100)]
# Docker keeps a container's last 5 health results, which the keeper counts passes in.
SuccessThreshold = Annotated[StrictInt, annotated_types.Ge(1), annotated_types.Le(5)]
Uid = Annotated[StrictInt, annotated_types.Ge(1000), annotated_types.Le(65533)]
Flag = StrictBool

# ------------------------------------------------------------------- parsing


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


def _layers(annotation: Any) -> tuple[Any, list[Any]]:
    """The type under Annotated and Optional, and the metadata gathered on the way."""
    metadata: list[Any] = []
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *more = get_args(annotation)
            metadata += more
        elif get_origin(annotation) in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def _declared_at(model: type[BaseModel], location: tuple[int | str, ...]) -> tuple[Any, list[Any]]:
    """The declared type (and its metadata) at an error's location in `model`."""
    current, metadata = _layers(model)
    parts = list(location)
    while parts:
        part = parts.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None, []
            current, metadata = _layers(field.annotation)
            metadata = [*field.metadata, *metadata]
        elif get_origin(current) is list:
            current, metadata = _layers(get_args(current)[0])
        elif get_origin(current) is dict:
            key, value = get_args(current)
            is_key = bool(parts) and parts[0] == "[key]"
            current, metadata = _layers(key if is_key else value)
            if is_key:
                parts.pop(0)
    return current, metadata


def _bounds(metadata: list[Any]) -> tuple[int, int]:
    low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), 0)
    high = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), 0)
    return typing.cast(int, low), typing.cast(int, high)


def _message(model: type[BaseModel], problem: Any) -> str:
    """Our words for one of pydantic's errors (see the module's docstring)."""
    kind, value, location = problem["type"], problem.get("input"), tuple(problem["loc"])
    declared, metadata = _declared_at(model, location)
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {type(value).__name__}"
    if kind == "list_type":
        return f"expected a list, got {type(value).__name__}"
    if kind == "string_pattern_mismatch":
        hint = next((m.text for m in metadata if isinstance(m, Hint)), problem["ctx"]["pattern"])
        return f"{shown(value)} is not valid ({hint})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        low, high = _bounds(metadata)
        return f"expected a whole number from {low} to {high}, got {shown(value)}"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(metadata)
        return f"{shown(value)} is out of range ({low}-{high})"
    if kind == "literal_error":
        choices = get_args(declared) if get_origin(declared) is Literal else ()
        return f"{shown(str(value))} is not one of: {', '.join(map(str, choices))}"
    if kind == "bool_type":
        return f"expected true or false, got {shown(value)}"
    return str(problem["msg"]).removeprefix("Value error, ")


def _first_problem(exc: ValidationError) -> Any:
    """pydantic's first error, but an unknown field before the errors inside its mapping
    (as one reads a file: a misspelt key first), the first of them by name."""
    problems = exc.errors(include_url=False)
    first = problems[0]
    unknown = [
        p
        for p in problems
        if p["type"] == "extra_forbidden"
        and tuple(first["loc"][: len(p["loc"]) - 1]) == tuple(p["loc"][:-1])
    ]
    if not unknown:
        return first
    outermost = min(len(p["loc"]) for p in unknown)
    return min((p for p in unknown if len(p["loc"]) == outermost), key=lambda p: str(p["loc"]))


FIELD_FIRST = re.compile(r"^([a-z_]+): ")


def parse(model: type[M], data: object, where: str, error: type[MeshexpError]) -> M:
    """Validate `data`; the first problem becomes `error("file: field: message")`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = _first_problem(exc)
        location = tuple(problem["loc"])
        if problem["type"] == "extra_forbidden":
            holder, _ = _declared_at(model, location[:-1])
            known = ", ".join(holder.model_fields) if holder is not None else ""
            message = f"unknown field {location[-1]!r}; valid fields are: {known}"
            location = location[:-1]
        else:
            message = _message(model, problem)
        field = _where(location)
        named = FIELD_FIRST.match(message)
        if named:  # a model's own check names its field first: "ports: ..."
            field = f"{field}.{named[1]}" if field else named[1]
            message = message[named.end() :]
        if not field:
            raise error(f"{where} {message}") from None
        joiner = " " if where.endswith(":") else "."
        raise error(f"{where}{joiner}{field}: {message}") from None
