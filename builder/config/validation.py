"""The strict patterns every value that can reach a shell script, a Dockerfile or
a manifest passes first (the catalog and settings models in `schema.py` use them).

They end in `$` because the JSON Schemas publish them (ECMA-262: the end of the
text). In Python `$` also matches before a final newline, and a newline is how a
value escapes its line: Python code applies them with `fullmatch`, and the models
refuse control characters in every string before any pattern (`CONTROL`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TypeVar

from builder.core.errors import MeshexpError

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
# A module path, a package under one, or a local module's own folder ("." or "./cmd/x").
GO_PACKAGE = re.compile(r"^(\.|(\./)?[A-Za-z0-9][-A-Za-z0-9_./]*)$")
GRPC_METHOD = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
IMAGE_REF = re.compile(
    r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
ABS_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
SHA256 = re.compile(r"^[a-f0-9]{64}$")
SPIFFE_ID = re.compile(r"^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")
ARG_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")
# Any control character: C0, DEL, C1, and Unicode's line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SPDX_EXPRESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:() -]{0,199}$")
# A registry host (with an optional port) and an optional path under it, as a mirror's
# two sides are written (`cr.l5d.io`, `registry.corp:5000/l5d`); used with fullmatch.
REGISTRY_PREFIX = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*){0,8}",
    re.ASCII,
)
LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,126}[a-z0-9])?$")
# A Kubernetes label: an optional DNS-subdomain prefix and "/", a name; its value.
KUBE_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# Docker's own rule for a container's name.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}", re.ASCII)
KUBE_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def shown(value: object) -> str:
    """A value as an error line quotes it: its repr, cut to about 60 characters (a
    megabyte value in a file must not make a megabyte error line)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}...{text[-6:]} ({len(text)} characters)"


def check_dns_label(text: str, where: str) -> str:
    """A Kubernetes object's name or namespace (a DNS-1123 label), or fail naming it."""
    if not DNS_LABEL.fullmatch(text):
        raise MeshexpError(
            f"{where}: {shown(text)} is not a DNS-1123 label (lowercase letters, digits and "
            "'-', at most 63, starting and ending with a letter or digit)"
        )
    return text


def check_container_name(text: str, where: str) -> str:
    """A Docker container's name, or fail naming it."""
    if not CONTAINER_NAME.fullmatch(text):
        raise MeshexpError(
            f"{where}: {shown(text)} is not a container name (letters, digits, '_', '.', '-', "
            "starting with a letter or digit)"
        )
    return text


def check_ip(text: str, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse one IP address (v4 or v6) or fail naming it."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise MeshexpError(
            f"{where}: {shown(text)} is not an IP address (e.g. 172.18.0.5 or fd00::5)"
        ) from None
