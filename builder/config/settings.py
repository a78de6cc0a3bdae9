"""Build settings: defaults, a YAML settings file, then flags, in that order.

The resolved settings also pick each component's source for the chosen
profile (online: upstream images; offline: Debian base, Go module proxy, and
a proxy file the user supplies).
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
import string
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from builder.config.contract import (
    PROXY_VERSION_FILE,
    ContractFacts,
    InboundPolicy,
    facts_for,
    known_proxy_version,
    release_of,
)
from builder.config.identity import IdentityStyle, WorkloadIdentity, workload_identity
from builder.config.mirrors import PULL_POLICIES, PullPolicy, mirrored
from builder.config.settings_types import (
    PRIVATE_NETWORKS,
    BinaryFiles,
    FolderList,
    Labels,
    Mirrors,
    NetworkList,
    Platforms,
    PortList,
    ProxyFiles,
)
from builder.config.sources import (
    BinarySource,
    FileSource,
    GoSource,
    ImageSource,
    Source,
    TrimmedGoSource,
)
from builder.config.types import (
    BaseImageRef,
    Choice,
    Entry,
    Flag,
    FreeText,
    IptablesMode,
    Platform,
    SpirePlugins,
    SpireVersion,
    Topology,
    TrustDomain,
    Uid,
    parse,
)
from builder.config.validation import IMAGE_REF, shown
from builder.config.yamlfile import read_yaml_file
from builder.core.errors import SettingsError

SPIRE_MODULE = "github.com/spiffe/spire"
# The SPIRE version go/go.mod requires for the multi-call binary (go/cmd/multicall).
MULTICALL_SPIRE_VERSION = "1.13.3"
OFFLINE_BASE_IMAGE = "meshexp/debian-base:bookworm"
ONLINE_BASE_IMAGE = "debian:bookworm-slim"
NAME_FIELDS = ("workload", "linkerd", "release", "proxy", "spire", "topology", "arch")


def check_name_pattern(pattern: str, label: str) -> None:
    """An image name or tag pattern names only NAME_FIELDS, plainly ({workload}: no
    positional {}, no index, attribute, conversion or format spec), else one line."""
    fields = "{" + "}, {".join(NAME_FIELDS) + "}"
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise SettingsError(f"{label}: {shown(pattern)}: {exc}; use any of {fields}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in NAME_FIELDS or spec or conversion:
            written = "{" + field + (f"!{conversion}" if conversion else "")
            written += (f":{spec}" if spec else "") + "}"
            raise SettingsError(f"{label}: unknown field {written}; use any of {fields}")


PROXY_IMAGE = "cr.l5d.io/linkerd/proxy"
PROXY_IN_IMAGE = "/usr/lib/linkerd/linkerd2-proxy"


def _keep_defaults(data: object) -> object:
    """A key left empty (`offline:` with no value) keeps what it was."""
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if value is not None}
    return data


class Settings(Entry):
    """Everything a build needs besides the workload itself: the settings file's model
    (meshexp.yaml), whose flags of the same names override it, with the defaults."""

    linkerd_version: FreeText = Field(
        "2.20",
        description="Linkerd release: a line (2.15 ... 2.20, each its edge release) or the "
        "edge release you run (edge-26.8.3)",
    )
    proxy_version: FreeText | None = Field(
        None, description="override the proxy version, e.g. v2.294.0"
    )
    spire_version: SpireVersion = Field("1.13.3", description="SPIRE version")
    trust_domain: TrustDomain = Field(
        "root.linkerd.cluster.local", description="SPIFFE trust domain"
    )
    offline: Flag = Field(
        False, description="no container registry: Debian base, Go sources, a proxy file"
    )
    base_image: BaseImageRef | None = Field(None, description="base image reference")
    topology: Annotated[Topology, Choice()] = Field("demo", description="SPIRE topology")
    iptables_mode: Annotated[IptablesMode, Choice()] | None = Field(
        None, description="iptables backend (default: the Linkerd release's)"
    )
    proxy_uid: Uid = Field(2102, description="UID the proxy runs as")
    spire_uid: Uid = Field(2103, description="UID SPIRE runs as")
    inbound_ports_to_ignore: PortList = (4190, 4191, 4567, 4568)
    outbound_ports_to_ignore: PortList = (4567, 4568)
    inbound_default_policy: Annotated[InboundPolicy, Choice()] = Field(
        "all-unauthenticated", description="default inbound policy"
    )
    identity: Annotated[IdentityStyle, Choice()] = Field(
        "namespaced",
        description="the names in a workload's SVID: namespaced (the default) or the "
        "walk-through's",
    )
    # Where the proxy asks the destination controller for profiles, and so where
    # a direct connection to a meshed workload's IP gets mTLS: the usual
    # private ranges, as the Linkerd chart's cluster networks.
    profile_networks: NetworkList = Field(
        PRIVATE_NETWORKS,
        description="networks whose addresses the proxy resolves through the destination "
        "controller, so that direct connections to meshed workloads get mTLS",
    )
    image_name: FreeText = Field(
        "meshexp/{workload}", description="image name pattern, e.g. registry/{workload}"
    )
    tag: FreeText = Field("linkerd-{linkerd}", description="tag pattern, e.g. linkerd-{linkerd}")
    platform: Annotated[Platform, Choice()] = Field("linux/amd64", description="target platform")
    # Empty: the one `platform`.
    platforms: Platforms = Field((), description="the platforms `publish` makes one image for")
    # Over proxy_source, for its platform.
    proxy_files: ProxyFiles = Field(
        default_factory=dict, description="PLATFORM: FILE, the proxy binary for that platform"
    )
    spire_multicall: Flag = Field(
        False, description="SPIRE server, agent and certcheck in one binary"
    )
    spire_plugins: Annotated[SpirePlugins, Choice()] = Field(
        "configured",
        description="SPIRE built from Go sources: only the plugins meshexp-build's configs "
        "name (configured), or every built-in (all)",
    )
    pull: Annotated[PullPolicy, Choice()] = Field(
        "missing",
        description=f"when to pull upstream's images: {', '.join(PULL_POLICIES)} (as Docker's "
        "--pull; default missing)",
    )
    mirrors: Mirrors = Field(
        default_factory=dict,
        description="UPSTREAM: MIRROR, e.g. cr.l5d.io: registry.corp:5000/l5d; every image "
        "reference under UPSTREAM is pulled from MIRROR instead",
    )
    proxy_source: BinarySource | None = None
    spire_server_source: BinarySource | None = None
    spire_agent_source: BinarySource | None = None
    labels: Labels = Field(default_factory=dict)
    catalog: FolderList = ()
    binaries: BinaryFiles = Field({}, description="NAME: FILE, over the catalog's sources for NAME")

    _keep_defaults = model_validator(mode="before")(_keep_defaults)

    def with_(self, **changes: Any) -> "Settings":
        """These settings with `changes` (values the tool or a test gives, already of their
        types: they are not read again)."""
        return self.model_copy(update=changes)

    @property
    def facts(self) -> ContractFacts:
        return facts_for(self.linkerd_version, self.proxy_version)

    @property
    def release(self) -> str:
        """The edge release the Linkerd version names: upstream's image tag."""
        return release_of(self.linkerd_version)

    @property
    def proxy_version_known(self) -> bool:
        """Whether the proxy's version is decided without asking its image."""
        return (
            self.proxy_version is not None or known_proxy_version(self.linkerd_version) is not None
        )

    def mirrored(self, reference: str) -> str:
        """Where an upstream image reference is pulled from (builder.config.mirrors)."""
        return mirrored(reference, tuple(self.mirrors.items()))

    def identity_of(self, namespace: str, name: str) -> WorkloadIdentity:
        """The SVID's names for workload `name` of `namespace` (builder.config.identity)."""
        return workload_identity(self.identity, self.trust_domain, namespace, name)

    @property
    def arch(self) -> str:
        return self.platform.split("/")[1]

    @property
    def target_platforms(self) -> tuple[str, ...]:
        """The platforms to build: several for one multi-platform image, else `platform`."""
        return self.platforms or (self.platform,)

    def for_platform(self, platform: str) -> "Settings":
        """These settings narrowed to one platform (whose proxy file `proxy()` picks)."""
        return self.with_(platform=platform, platforms=())

    @property
    def resolved_iptables_mode(self) -> str:
        return self.iptables_mode or self.facts.default_iptables_mode

    @property
    def resolved_base_image(self) -> str:
        return self.base_image or (OFFLINE_BASE_IMAGE if self.offline else ONLINE_BASE_IMAGE)

    def image_reference(self, workload: str) -> str:
        """`name:tag` for a workload, from the name and tag patterns."""
        pattern = f"{self.image_name}:{self.tag}"
        # Asked only where a pattern names it: it may come from the proxy's image.
        proxy = self.facts.proxy_version if "{proxy}" in pattern else ""
        return self._reference(workload, proxy)

    def _reference(self, workload: str, proxy: str) -> str:
        values = {
            "workload": workload,
            "linkerd": self.linkerd_version,
            "release": self.release,
            "proxy": proxy,
            "spire": self.spire_version,
            "topology": self.topology,
            "arch": self.arch,
        }
        return f"{self.image_name}:{self.tag}".format(**values)

    def proxy(self) -> Source:
        """The proxy's source: this platform's file (--proxy-file PLATFORM=FILE), the
        given source, or the upstream image; offline it must be a file the user names."""
        platform_file = self.proxy_files.get(self.platform)
        if platform_file is not None:
            return FileSource(path=platform_file)
        if self.proxy_source is not None:
            return self.proxy_source
        if self.offline:
            raise SettingsError(
                "the offline profile has no default proxy: the Linkerd proxy is published only "
                "as an image. Give it as a file: --proxy-file PATH (a linkerd2-proxy binary, or "
                "for tests the stand-in built by `make standin`), or drop --offline"
            )
        # Upstream tags the proxy image by Linkerd release, never by proxy version.
        return ImageSource(ref=f"{PROXY_IMAGE}:{self.release}", path=PROXY_IN_IMAGE)

    @property
    def uses_multicall(self) -> bool:
        """One binary for SPIRE server, agent and certcheck (demo topology, offline).

        Opt-in (`spire_multicall: true`): it saves about 50 MB of image but costs
        the agent about 35 MB of memory, since the server's packages initialise in
        it too (bench/NOTES.md). Only where we build SPIRE ourselves at the
        version our Go module pins; the upstream images ship the programs apart.
        """
        return (
            self.spire_multicall
            and self.topology == "demo"
            and self.offline
            and self.spire_server_source is None
            and self.spire_agent_source is None
            and self.spire_version == MULTICALL_SPIRE_VERSION
        )

    @property
    def trims_spire(self) -> bool:
        """Whether SPIRE we build ourselves carries only the configured plugins."""
        return self.spire_plugins == "configured"

    def spire(self, component: str) -> Source:
        """The source of `spire-server` or `spire-agent`."""
        chosen = (
            self.spire_server_source if component == "spire-server" else self.spire_agent_source
        )
        if chosen is not None:
            return chosen
        if self.offline:
            build = TrimmedGoSource if self.trims_spire else GoSource
            return build(
                package=f"{SPIRE_MODULE}/cmd/{component}",
                version=f"v{self.spire_version}",
                cgo=True,
            )
        return ImageSource(
            ref=f"ghcr.io/spiffe/{component}:{self.spire_version}",
            path=f"/opt/spire/bin/{component}",
        )

    def check(self) -> Self:
        """Cross-field checks; returns self so callers can chain."""
        if self.proxy_version_known:
            self.facts  # noqa: B018 - resolves and validates the Linkerd/proxy versions
        elif self.offline or self.proxy_files or self.proxy_source is not None:
            raise SettingsError(
                f"Linkerd {self.release} is newer than this tool's table of proxy versions and "
                "the proxy is a file: give its version with --proxy-version vX.Y.Z (online, "
                f"it is read from the image's {PROXY_VERSION_FILE})"
            )
        for pattern, label in ((self.image_name, "image_name"), (self.tag, "tag")):
            check_name_pattern(pattern, label)
        # The proxy's version may be known only once its image is read: a placeholder of
        # its form checks the pattern meanwhile.
        reference = self._reference("smiley", self.proxy_version or "v0.0.0")
        if not IMAGE_REF.fullmatch(reference):
            raise SettingsError(
                f"image_name/tag give {shown(reference)}, which is not a valid image "
                "reference (lowercase name, tag of letters, digits, '.', '_', '-')"
            )
        if self.proxy_uid == self.spire_uid:
            raise SettingsError(
                "proxy_uid and spire_uid must differ: the proxy's identity is selected by its UID"
            )
        return self


# Settings that add to what an earlier layer gave (the settings file, then flags);
# every other value replaces it.
ADDED = ("mirrors", "labels", "binaries", "proxy_files", "catalog")


def settings_from_mapping(
    data: dict[str, Any], where: str, base_dir: Path, start: Settings | None = None
) -> Settings:
    """Apply a mapping (settings file or flags) over `start`, validating each value;
    paths in it are relative to `base_dir`."""
    layer = parse(Settings, data, where, SettingsError, {"base_dir": base_dir})
    earlier = start or Settings()
    changes: dict[str, Any] = {}
    for key in layer.model_fields_set:
        value, before = getattr(layer, key), getattr(earlier, key)
        if key in ADDED:
            value = before + value if isinstance(value, tuple) else before | value
        changes[key] = value
    return earlier.with_(**changes).check()


def _plain(value: Any) -> Any:
    """Flags as a settings file would give them: paths as text, repeats as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def load_settings(path: Path | None, overrides: dict[str, Any]) -> Settings:
    """Defaults, then the settings file (if any), then flag overrides."""
    settings = Settings()
    if path is not None:
        document = read_yaml_file(path, "settings file", SettingsError) or {}
        settings = settings_from_mapping(document, f"{path}:", path.parent, settings)
    flags = {key: _plain(value) for key, value in overrides.items() if value not in (None, ())}
    _platform_flags(flags)
    return settings_from_mapping(flags, "flags:", Path.cwd(), settings).check()


def _platform_flags(flags: dict[str, Any]) -> None:
    """--platform A,B means one image for several platforms; --proxy-file FILE is the
    proxy, --proxy-file PLATFORM=FILE that platform's (both may repeat)."""
    platform = flags.get("platform")
    if isinstance(platform, str) and "," in platform:
        flags["platforms"] = flags.pop("platform")
    given = flags.pop("proxy_file", None)
    for item in [given] if isinstance(given, str) else given or []:
        name, sep, path = str(item).partition("=")
        if sep and name.startswith("linux/"):
            flags.setdefault("proxy_files", []).append(f"{name}={path}")
        else:
            flags["proxy_source"] = {"file": {"path": str(item)}}


def default_settings_file() -> Path | None:
    """`meshexp.yaml` in the current folder, when present."""
    candidate = Path("meshexp.yaml")
    return candidate if candidate.is_file() else None


__all__ = ["FileSource", "Settings", "load_settings", "settings_from_mapping"]
