"""Small, strict readers for YAML mappings, with messages that name file and field.

Every value that can reach a shell script, a Dockerfile or a manifest passes
one of the patterns here first.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from builder.errors import MeshexpError

T = TypeVar("T")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
PORT_NAME = re.compile(r"^(?=.{1,15}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
GO_MODULE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.~/]*$")
GO_VERSION = re.compile(r"^v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
GO_PACKAGE = re.compile(r"^(\./)?[A-Za-z0-9][-A-Za-z0-9_./]*$")
GRPC_METHOD = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
IMAGE_REF = re.compile(
    r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
ABS_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
SHA256 = re.compile(r"^[a-f0-9]{64}$")
SPIFFE_ID = re.compile(r"^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")
ARG_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")
SPDX_EXPRESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:() -]{0,199}$")
LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,126}[a-z0-9])?$")


def fail(where: str, message: str) -> MeshexpError:
    """An error for one field: `file: field: message`."""
    return MeshexpError(f"{where}: {message}")


class Fields:
    """A mapping read field by field; unknown fields are refused up front."""

    def __init__(
        self,
        data: object,
        where: str,
        allowed: tuple[str, ...],
        error: type[MeshexpError] = MeshexpError,
    ) -> None:
        self.where = where
        self.error = error
        if not isinstance(data, Mapping):
            raise error(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(key) for key in data if key not in allowed)
        if unknown:
            raise error(
                f"{where}: unknown field {unknown[0]!r}; valid fields are: {', '.join(allowed)}"
            )
        self.data: Mapping[str, Any] = data

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if not self.where.endswith(":") else f"{self.where} {key}"

    def bad(self, key: str, message: str) -> MeshexpError:
        return self.error(f"{self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: object = None) -> Any:
        return self.data.get(key, default)

    def text(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        default: str | None = None,
    ) -> str:
        if key not in self.data:
            if default is None:
                raise self.bad(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.bad(key, f"expected text, got {type(value).__name__}")
        value = str(value)
        if pattern is not None and not pattern.match(value):
            raise self.bad(key, f"{value!r} is not valid ({hint})")
        if pattern is None and not ARG_TEXT.match(value):
            raise self.bad(key, f"{value!r} holds a control character (newline, tab...); remove it")
        return value

    def integer(self, key: str, *, low: int, high: int, default: int | None = None) -> int:
        if key not in self.data:
            if default is None:
                raise self.bad(key, "is required")
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(key, f"expected a whole number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise self.bad(key, f"{value} is out of range ({low}-{high})")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, default=default)
        if value not in choices:
            raise self.bad(key, f"{value!r} is not one of: {', '.join(choices)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.bad(key, f"expected true or false, got {value!r}")
        return value

    def items(
        self, key: str, read: Callable[[object, str], T], default: list[T] | None = None
    ) -> list[T]:
        if key not in self.data:
            if default is None:
                raise self.bad(key, "is required")
            return list(default)
        value = self.data[key]
        if not isinstance(value, list):
            raise self.bad(key, f"expected a list, got {type(value).__name__}")
        return [read(item, f"{self.path(key)}[{index}]") for index, item in enumerate(value)]

    def texts(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        default: list[str] | None = None,
    ) -> list[str]:
        def read(item: object, where: str) -> str:
            holder = Fields({"v": item}, where, ("v",), self.error)
            try:
                return holder.text("v", pattern=pattern, hint=hint)
            except MeshexpError as exc:
                raise self.error(str(exc.message).replace(f"{where}.v", where)) from None

        return self.items(key, read, default)


def check_ip(text: str, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse one IP address (v4 or v6) or fail naming it."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise MeshexpError(
            f"{where}: {text!r} is not an IP address (e.g. 172.18.0.5 or fd00::5)"
        ) from None
