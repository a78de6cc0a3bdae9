"""Build settings: defaults, a YAML settings file, then flags, in that order.

The resolved settings also pick each component's source for the chosen
profile (online: upstream images; offline: Debian base, Go module proxy, and
a proxy file the user supplies).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builder.config.contract import (
    PROXY_VERSION_FILE,
    ContractFacts,
    facts_for,
    known_proxy_version,
    release_of,
)
from builder.config.identity import WorkloadIdentity, workload_identity
from builder.config.mirrors import mirrored
from builder.config.models import BinarySource, FileSource, GoSource, ImageSource, source_from
from builder.config.settings_schema import PRIVATE_NETWORKS, SettingsEntry
from builder.config.types import parse
from builder.config.validation import IMAGE_REF, shown
from builder.config.yamlfile import read_yaml_file
from builder.core.errors import SettingsError
from builder.core.files import is_folder, is_plain_file

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


@dataclass(frozen=True)
class Settings:
    """Everything a build needs besides the workload itself."""

    linkerd_version: str = "2.20"
    proxy_version: str | None = None
    spire_version: str = "1.13.3"
    trust_domain: str = "root.linkerd.cluster.local"
    offline: bool = False
    base_image: str | None = None
    topology: str = "demo"
    iptables_mode: str | None = None
    proxy_uid: int = 2102
    spire_uid: int = 2103
    inbound_ports_to_ignore: tuple[int, ...] = (4190, 4191, 4567, 4568)
    outbound_ports_to_ignore: tuple[int, ...] = (4567, 4568)
    inbound_default_policy: str = "all-unauthenticated"
    identity: str = "namespaced"
    # Where the proxy asks the destination controller for profiles, and so where
    # a direct connection to a meshed workload's IP gets mTLS: the usual
    # private ranges, as the Linkerd chart's cluster networks.
    profile_networks: tuple[str, ...] = PRIVATE_NETWORKS
    image_name: str = "meshexp/{workload}"
    tag: str = "linkerd-{linkerd}"
    platform: str = "linux/amd64"
    # The platforms of one multi-platform image (publish through BuildKit);
    # empty: the one `platform`.
    platforms: tuple[str, ...] = ()
    # The proxy binary per platform (--proxy-file PLATFORM=FILE), over proxy_source.
    proxy_files: tuple[tuple[str, Path], ...] = ()
    spire_multicall: bool = False
    # "configured": SPIRE built with only the plugins our configs name; "all": every
    # built-in (for users who configure other plugins).
    spire_plugins: str = "configured"
    proxy_source: BinarySource | None = None
    spire_server_source: BinarySource | None = None
    spire_agent_source: BinarySource | None = None
    labels: tuple[tuple[str, str], ...] = ()
    # When to pull upstream's images (Docker's --pull: missing, always, never).
    pull: str = "missing"
    # (upstream registry prefix, mirror): where upstream references are pulled from.
    mirrors: tuple[tuple[str, str], ...] = ()
    catalog: tuple[Path, ...] = ()
    binaries: tuple[tuple[str, Path], ...] = ()

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
        return mirrored(reference, self.mirrors)

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

    def for_platform(self, platform: str) -> Settings:
        """These settings narrowed to one platform (whose proxy file `proxy()` picks)."""
        return replace(self, platform=platform, platforms=())

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

    def proxy(self) -> BinarySource:
        """The proxy's source: this platform's file (--proxy-file PLATFORM=FILE), the
        given source, or the upstream image; offline it must be a file the user names."""
        platform_file = dict(self.proxy_files).get(self.platform)
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
        return ImageSource(f"{PROXY_IMAGE}:{self.release}", PROXY_IN_IMAGE)

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

    def spire(self, component: str) -> BinarySource:
        """The source of `spire-server` or `spire-agent`."""
        chosen = (
            self.spire_server_source if component == "spire-server" else self.spire_agent_source
        )
        if chosen is not None:
            return chosen
        if self.offline:
            return GoSource(
                package=f"{SPIRE_MODULE}/cmd/{component}",
                version=f"v{self.spire_version}",
                cgo=True,
                trim_spire=self.trims_spire,
            )
        return ImageSource(
            f"ghcr.io/spiffe/{component}:{self.spire_version}", f"/opt/spire/bin/{component}"
        )

    def check(self) -> Settings:
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


def _folders(items: list[str], base_dir: Path, where: str) -> tuple[Path, ...]:
    """Catalog folders, each an existing folder (relative to the settings file)."""
    folders = []
    for item in items:
        folder = (base_dir / item).resolve()
        if not is_folder(folder):
            raise SettingsError(
                f"{where} catalog: {shown(item)} is not a folder; make one with "
                "`meshexp-build workloads new NAME --dir FOLDER`"
            )
        folders.append(folder)
    return tuple(folders)


def _binary_files(given: dict[str, str], base_dir: Path, where: str) -> dict[str, Path]:
    """Workload binaries from files; each wins over the catalog's sources for its name."""
    files = {}
    for name, path in given.items():
        resolved = (base_dir / path).resolve()
        if not is_plain_file(resolved):
            raise SettingsError(
                f"{where} binaries: {name}: {resolved} is not a file; give the binary itself"
            )
        files[name] = resolved
    return files


def settings_from_mapping(
    data: dict[str, Any], where: str, base_dir: Path, start: Settings | None = None
) -> Settings:
    """Apply a mapping (settings file or flags) over `start`, validating each value.

    `catalog`, `labels` and `binaries` add to what earlier layers (the settings
    file) gave; every other value replaces it.
    """
    entry = parse(SettingsEntry, data, where, SettingsError)
    earlier = start or Settings()
    changes: dict[str, Any] = {}
    for key in entry.model_fields_set:
        value = getattr(entry, key)
        if value is None:
            continue
        if key == "mirrors":
            changes[key] = tuple((dict(earlier.mirrors) | value).items())
        elif key.endswith("_ports_to_ignore") or key == "profile_networks":
            changes[key] = tuple(value)
        elif key.endswith("_source"):
            changes[key] = source_from(value, base_dir)
        elif key == "catalog":
            changes[key] = earlier.catalog + _folders(value, base_dir, where)
        elif key == "labels":
            changes[key] = tuple((dict(earlier.labels) | value).items())
        elif key == "binaries":
            given = dict(earlier.binaries) | _binary_files(value, base_dir, where)
            changes[key] = tuple(given.items())
        elif key == "proxy_files":
            given = dict(earlier.proxy_files) | _binary_files(value, base_dir, where)
            changes[key] = tuple(given.items())
        elif key == "platforms":
            changes[key] = tuple(dict.fromkeys(value))
        else:
            changes[key] = value
    return replace(earlier, **changes).check()


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
