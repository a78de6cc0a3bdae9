"""Where a binary comes from: an image, a file, a URL or a Go package, as a catalog entry
or the settings file writes it (`{image: {ref: ..., path: ...}}`), each validated into
its own frozen model; alternatives tried in order are a FirstOf.

Paths are read relative to the file that names them: `parse` is given
`context={"base_dir": FOLDER}` and they are resolved as they are checked.
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import core_schema

from builder.config.types import (
    WORDED,
    Entry,
    Flag,
    FreeText,
    GoPackage,
    GoVersion,
    ImagePath,
    ImageRef,
    Sha256,
    as_text,
    parse,
    refuse,
)
from builder.config.validation import shown
from builder.core.errors import CatalogError

SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"


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


def alternatives(value: object) -> object:
    if isinstance(value, list) and not value:
        refuse("give one source, or a list of alternatives tried in order")
    return value if isinstance(value, list | tuple) else [value]
