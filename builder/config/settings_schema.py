"""The settings file (meshexp.yaml) as a pydantic model; flags of the same names
override it. Its value types are builder.config.types'; the sources it names are
the catalog's (builder.config.schema).
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
import ipaddress
from collections.abc import Callable
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    WithJsonSchema,
)

from builder.config.contract import InboundPolicy
from builder.config.identity import IdentityStyle
from builder.config.mirrors import PULL_POLICIES, PullPolicy, check_mirror_side
from builder.config.schema import (
    Entry,
    IptablesMode,
    Platform,
    SourceEntry,
    SpirePlugins,
    Topology,
)
from builder.config.types import (
    AsText,
    BaseImageRef,
    BinaryName,
    Flag,
    FreeText,
    PortNumber,
    SpireVersion,
    TrustDomain,
    Uid,
)
from builder.config.validation import LABEL_KEY, shown
from builder.core import image_contract


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
                    raise ValueError(f"{shown(item)} is not {what}")
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
            f"{shown(value)} is not a network in CIDR form (like 10.0.0.0/8 or fd00::/8, "
            "host bits zero)"
        ) from None


Network = Annotated[
    str,
    AsText,
    AfterValidator(_network),
    WithJsonSchema({"type": "string", "description": "a network in CIDR form, like 10.0.0.0/8"}),
]
NetworkList = Annotated[list[Network], BeforeValidator(_comma_text_list)]
PortList = Annotated[list[PortNumber], BeforeValidator(_comma_list)]


def _label_name(name: str) -> str:
    if not LABEL_KEY.fullmatch(name) or name.startswith(image_contract.PREFIX):
        raise ValueError(
            f"{shown(name)} is not a label name of ours to set (lowercase reverse-DNS like "
            "org.example.team; io.meshexp.* is the tool's own)"
        )
    return name


MirrorSide = Annotated[
    str,
    AfterValidator(check_mirror_side),
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


class SettingsEntry(Entry):
    """The settings file (meshexp.yaml); flags of the same names override it."""

    linkerd_version: FreeText | None = Field(
        None,
        description="Linkerd release: a line (2.15 ... 2.20, each its edge release) or the "
        "edge release you run (edge-26.8.3)",
    )
    proxy_version: FreeText | None = Field(
        None, description="override the proxy version, e.g. v2.294.0"
    )
    spire_version: SpireVersion | None = Field(None, description="SPIRE version")
    trust_domain: TrustDomain | None = Field(None, description="SPIFFE trust domain")
    offline: Flag | None = Field(
        None, description="no container registry: Debian base, Go sources, a proxy file"
    )
    base_image: BaseImageRef | None = Field(None, description="base image reference")
    topology: Annotated[Topology, AsText] | None = Field(None, description="SPIRE topology")
    iptables_mode: Annotated[IptablesMode, AsText] | None = Field(
        None, description="iptables backend"
    )
    proxy_uid: Uid | None = Field(None, description="UID the proxy runs as")
    spire_uid: Uid | None = Field(None, description="UID SPIRE runs as")
    inbound_ports_to_ignore: Annotated[list[PortNumber] | None, BeforeValidator(_comma_list)] = None
    outbound_ports_to_ignore: Annotated[list[PortNumber] | None, BeforeValidator(_comma_list)] = (
        None
    )
    inbound_default_policy: Annotated[InboundPolicy, AsText] | None = Field(
        None, description="default inbound policy"
    )
    identity: Annotated[IdentityStyle, AsText] | None = Field(
        None,
        description="the names in a workload's SVID: namespaced (the default) or the "
        "walk-through's",
    )
    profile_networks: NetworkList | None = Field(
        default=None,
        description="networks whose addresses the proxy resolves through the destination "
        "controller, so that direct connections to meshed workloads get mTLS",
    )
    image_name: FreeText | None = Field(
        None, description="image name pattern, e.g. registry/{workload}"
    )
    tag: FreeText | None = Field(None, description="tag pattern, e.g. linkerd-{linkerd}")
    platform: Annotated[Platform, AsText] | None = Field(None, description="target platform")
    platforms: Annotated[
        list[Annotated[Platform, AsText]] | None,
        BeforeValidator(_comma_text_list),
    ] = Field(default=None, description="the platforms `publish` makes one image for")
    proxy_files: Annotated[
        dict[Annotated[Platform, AsText], FreeText] | None,
        BeforeValidator(_pairs("PLATFORM=FILE")),
    ] = Field(default=None, description="PLATFORM: FILE, the proxy binary for that platform")
    spire_multicall: Flag | None = Field(
        None, description="SPIRE server, agent and certcheck in one binary"
    )
    spire_plugins: Annotated[SpirePlugins, AsText] | None = Field(
        None,
        description="SPIRE built from Go sources: only the plugins meshexp-build's configs "
        "name (configured), or every built-in (all)",
    )
    pull: Annotated[PullPolicy, AsText] | None = Field(
        None,
        description=f"when to pull upstream's images: {', '.join(PULL_POLICIES)} (as Docker's "
        "--pull; default missing)",
    )
    mirrors: Annotated[
        dict[MirrorSide, MirrorSide] | None,
        BeforeValidator(_pairs("UPSTREAM=MIRROR")),
    ] = Field(
        default=None,
        description="UPSTREAM: MIRROR, e.g. cr.l5d.io: registry.corp:5000/l5d; every image "
        "reference under UPSTREAM is pulled from MIRROR instead",
    )
    proxy_source: SourceEntry | None = None
    spire_server_source: SourceEntry | None = None
    spire_agent_source: SourceEntry | None = None
    labels: Annotated[
        dict[LabelName, FreeText] | None,
        BeforeValidator(_pairs("KEY=VALUE")),
    ] = None
    catalog: Annotated[list[FreeText] | None, BeforeValidator(_folder_list)] = None
    binaries: Annotated[
        dict[BinaryName, FreeText] | None,
        BeforeValidator(_pairs("NAME=PATH")),
    ] = Field(default=None, description="NAME: FILE, over the catalog's sources for NAME")
