"""The value types only the settings file has (networks, label names, mirrors, files
and folders on this machine), and the readers that let a flag give what the file
writes as a mapping or a list (`--label K=V`, `--inbound-ports-to-ignore 1,2`).
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema

from builder.config.mirrors import check_mirror_side
from builder.config.types import (
    AsText,
    BinaryName,
    Choice,
    FreeText,
    Platform,
    PortNumber,
    as_text,
    refuse,
)
from builder.config.validation import LABEL_KEY, shown
from builder.core import image_contract
from builder.core.files import is_folder, is_plain_file


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
                    refuse(f"{shown(item)} is not {what}")
                pairs[name] = text
            return pairs
        if not isinstance(value, dict):
            refuse(f"expected a mapping or {what} items")
        return {str(k): v for k, v in value.items()}

    return read


def _folder_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


PRIVATE_NETWORKS = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8")


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        refuse(
            f"{shown(value)} is not a network in CIDR form (like 10.0.0.0/8 or fd00::/8, "
            "host bits zero)"
        )


Network = Annotated[
    str,
    AsText,
    AfterValidator(_network),
    WithJsonSchema({"type": "string", "description": "a network in CIDR form, like 10.0.0.0/8"}),
]
NetworkList = Annotated[tuple[Network, ...], BeforeValidator(_comma_text_list)]
PortList = Annotated[tuple[PortNumber, ...], BeforeValidator(_comma_list)]


def _label_name(name: str) -> str:
    if not LABEL_KEY.fullmatch(name) or name.startswith(image_contract.PREFIX):
        refuse(
            f"{shown(name)} is not a label name of ours to set (lowercase reverse-DNS like "
            "org.example.team; io.meshexp.* is the tool's own)"
        )
    return name


def _mirror_side(text: str) -> str:
    try:
        return check_mirror_side(text)
    except ValueError as exc:
        refuse(str(exc))


MirrorSide = Annotated[
    str,
    AfterValidator(_mirror_side),
    WithJsonSchema(
        {
            "type": "string",
            "description": "a registry host with an optional port and path, e.g. "
            "registry.corp:5000/l5d",
        }
    ),
]


LabelName = Annotated[
    str,
    AfterValidator(_label_name),
    WithJsonSchema(
        {"type": "string", "pattern": LABEL_KEY.pattern, "not": {"pattern": "^io\\.meshexp\\."}}
    ),
]
Labels = Annotated[dict[LabelName, FreeText], BeforeValidator(_pairs("KEY=VALUE"))]
Mirrors = Annotated[dict[MirrorSide, MirrorSide], BeforeValidator(_pairs("UPSTREAM=MIRROR"))]


def _here(value: object, info: ValidationInfo) -> Path:
    """A path on this machine as written, relative to the settings file (or, for a flag,
    the current folder); one the tool gives is taken as it is."""
    if isinstance(value, Path):
        return value
    base = (info.context or {}).get("base_dir", Path.cwd())
    return (Path(base) / as_text(value)).resolve()


def _a_folder(value: object, info: ValidationInfo) -> Path:
    folder = _here(value, info)
    if not is_folder(folder):
        refuse(
            f"{shown(str(value))} is not a folder; make one with "
            "`meshexp-build workloads new NAME --dir FOLDER`"
        )
    return folder


def _a_file(value: object, info: ValidationInfo) -> Path:
    file = _here(value, info)
    if not is_plain_file(file):
        refuse(f"{file} is not a file; give the binary itself")
    return file


TEXT_SCHEMA = WithJsonSchema({"type": "string"})
# A catalog folder; a binary file (relative to the settings file, for a flag the folder
# the command runs in).
Folder = Annotated[Path, BeforeValidator(_a_folder), TEXT_SCHEMA]
BinaryFile = Annotated[Path, BeforeValidator(_a_file), TEXT_SCHEMA]
FolderList = Annotated[tuple[Folder, ...], BeforeValidator(_folder_list)]
BinaryFiles = Annotated[dict[BinaryName, BinaryFile], BeforeValidator(_pairs("NAME=PATH"))]
PlatformName = Annotated[Platform, Choice()]
# The proxy binary per platform (--proxy-file PLATFORM=FILE).
ProxyFiles = Annotated[dict[PlatformName, BinaryFile], BeforeValidator(_pairs("PLATFORM=FILE"))]


def _once_each(platforms: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(platforms))


Platforms = Annotated[
    tuple[PlatformName, ...], BeforeValidator(_comma_text_list), AfterValidator(_once_each)
]
