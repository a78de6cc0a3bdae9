"""Build settings: defaults, a YAML settings file, then flags, in that order.

The resolved settings also pick each component's source for the chosen
profile (online: upstream images; offline: Debian base, Go module proxy, and
a proxy file the user supplies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from builder.contract import INBOUND_POLICIES, ContractFacts, facts_for
from builder.errors import SettingsError
from builder.models import BinarySource, FileSource, GoSource, ImageSource, read_source
from builder.validation import DNS_LABEL, DNS_NAME, IMAGE_REF, LABEL_KEY, Fields

SPIRE_MODULE = "github.com/spiffe/spire"
# The SPIRE version go/go.mod requires for the multi-call binary (go/cmd/multicall).
MULTICALL_SPIRE_VERSION = "1.13.3"
OFFLINE_BASE_IMAGE = "meshexp/debian-base:bookworm"
ONLINE_BASE_IMAGE = "debian:bookworm-slim"
SPIRE_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
PLATFORMS = ("linux/amd64", "linux/arm64")
TOPOLOGIES = ("demo", "production")
IPTABLES_MODES = ("legacy", "nft")
TEMPLATE_FIELDS = re.compile(r"\{(\w+)\}")
NAME_FIELDS = ("workload", "linkerd", "proxy", "spire", "topology", "arch")


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
    image_name: str = "meshexp/{workload}"
    tag: str = "linkerd-{linkerd}"
    platform: str = "linux/amd64"
    spire_multicall: bool = False
    proxy_source: BinarySource | None = None
    spire_server_source: BinarySource | None = None
    spire_agent_source: BinarySource | None = None
    labels: tuple[tuple[str, str], ...] = ()
    catalog: tuple[Path, ...] = ()
    binaries: tuple[tuple[str, Path], ...] = ()

    @property
    def facts(self) -> ContractFacts:
        return facts_for(self.linkerd_version, self.proxy_version)

    @property
    def arch(self) -> str:
        return self.platform.split("/")[1]

    @property
    def resolved_iptables_mode(self) -> str:
        return self.iptables_mode or self.facts.default_iptables_mode

    @property
    def resolved_base_image(self) -> str:
        return self.base_image or (OFFLINE_BASE_IMAGE if self.offline else ONLINE_BASE_IMAGE)

    def image_reference(self, workload: str) -> str:
        """`name:tag` for a workload, from the name and tag patterns."""
        values = {
            "workload": workload,
            "linkerd": self.linkerd_version,
            "proxy": self.facts.proxy_version,
            "spire": self.spire_version,
            "topology": self.topology,
            "arch": self.arch,
        }
        return f"{self.image_name.format(**values)}:{self.tag.format(**values)}"

    def proxy(self) -> BinarySource:
        """The proxy's source; offline it must be a file the user names."""
        if self.proxy_source is not None:
            return self.proxy_source
        if self.offline:
            raise SettingsError(
                "the offline profile has no default proxy: the Linkerd proxy is published only "
                "as an image. Give it as a file: --proxy-file PATH (a linkerd2-proxy binary, or "
                "for tests the stand-in built by `make standin`), or drop --offline"
            )
        return ImageSource(
            f"cr.l5d.io/linkerd/proxy:{self.facts.proxy_version}", "/usr/lib/linkerd/linkerd2-proxy"
        )

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
            )
        return ImageSource(
            f"ghcr.io/spiffe/{component}:{self.spire_version}", f"/opt/spire/bin/{component}"
        )

    def check(self) -> Settings:
        """Cross-field checks; returns self so callers can chain."""
        self.facts  # noqa: B018 - resolves and validates the Linkerd/proxy versions
        for pattern, label in ((self.image_name, "image_name"), (self.tag, "tag")):
            unknown = set(TEMPLATE_FIELDS.findall(pattern)) - set(NAME_FIELDS)
            if unknown:
                raise SettingsError(
                    f"{label}: unknown field {{{sorted(unknown)[0]}}}; "
                    f"use any of {{{'}, {'.join(NAME_FIELDS)}}}"
                )
        reference = self.image_reference("smiley")
        if not IMAGE_REF.match(reference):
            raise SettingsError(
                f"image_name/tag give {reference!r}, which is not a valid image "
                "reference (lowercase name, tag of letters, digits, '.', '_', '-')"
            )
        if self.proxy_uid == self.spire_uid:
            raise SettingsError(
                "proxy_uid and spire_uid must differ: the proxy's identity is selected by its UID"
            )
        return self


def _ports(f: Fields, key: str) -> tuple[int, ...]:
    raw = f.raw(key)
    if isinstance(raw, str):
        raw = [part for part in raw.replace(" ", "").split(",") if part]
    holder = Fields({key: raw}, f.where, (key,), SettingsError)

    def read(item: object, where: str) -> int:
        value = int(item) if isinstance(item, str) and item.isdigit() else item
        return Fields({"p": value}, where, ("p",), SettingsError).integer("p", low=1, high=65535)

    return tuple(holder.items(key, read))


def _folders(f: Fields, key: str, base_dir: Path) -> tuple[Path, ...]:
    """Catalog folders: one path or a list, each an existing folder."""
    raw = f.raw(key)
    items = [raw] if isinstance(raw, str | Path) else raw
    if not isinstance(items, list | tuple):
        raise f.bad(key, "expected a folder or a list of folders")
    folders = []
    for item in items:
        folder = (base_dir / str(item)).resolve()
        if not folder.is_dir():
            raise f.bad(
                key,
                f"{str(item)!r} is not a folder; make one with "
                "`meshexp-build workloads new NAME --dir FOLDER`",
            )
        folders.append(folder)
    return tuple(folders)


def _labels(f: Fields, key: str) -> dict[str, str]:
    """Extra image labels: a mapping (settings file) or KEY=VALUE items (--label)."""
    raw = f.raw(key)
    if isinstance(raw, list | tuple):
        pairs = {}
        for item in raw:
            name, sep, value = str(item).partition("=")
            if not sep:
                raise f.bad(key, f"{item!r} is not KEY=VALUE")
            pairs[name] = value
        raw = pairs
    if not isinstance(raw, dict):
        raise f.bad(key, "expected a mapping of label names to values")
    holder = Fields(
        {str(k): v for k, v in raw.items()}, f.path(key), tuple(map(str, raw)), SettingsError
    )
    labels = {}
    for name in holder.data:
        if not LABEL_KEY.match(name) or name.startswith("io.meshexp."):
            raise f.bad(
                key,
                f"{name!r} is not a label name of ours to set (lowercase reverse-DNS like "
                "org.example.team; io.meshexp.* is the tool's own)",
            )
        labels[name] = holder.text(name)
    return labels


def _binaries(f: Fields, key: str, base_dir: Path) -> dict[str, Path]:
    """Workload binaries from files: a mapping (settings file) or NAME=PATH items
    (--binary); each wins over the catalog's sources for the binary of that name.
    """
    raw = f.raw(key)
    if isinstance(raw, list | tuple):
        raw = dict(str(item).partition("=")[::2] for item in raw)
    if not isinstance(raw, dict):
        raise f.bad(key, "expected NAME=PATH items (or a mapping of binary names to files)")
    files = {}
    for name, path in raw.items():
        if not DNS_LABEL.match(str(name)) or not path:
            raise f.bad(
                key,
                f"{name}={path} is not NAME=PATH with NAME a catalog binary name "
                "(lowercase letters, digits, '-')",
            )
        resolved = (base_dir / str(path)).resolve()
        if not resolved.is_file():
            raise f.bad(key, f"{name}: {resolved} is not a file; give the binary itself")
        files[str(name)] = resolved
    return files


def settings_from_mapping(
    data: dict[str, Any], where: str, base_dir: Path, start: Settings | None = None
) -> Settings:
    """Apply a mapping (settings file or flags) over `start`, validating each value."""
    names = tuple(item.name for item in fields(Settings))
    f = Fields(data, where, names, SettingsError)
    changes: dict[str, Any] = {}
    for key in f.data:
        value = f.raw(key)
        if value is None:
            continue
        if key in ("proxy_uid", "spire_uid"):
            changes[key] = f.integer(key, low=1000, high=65533)
        elif key in ("inbound_ports_to_ignore", "outbound_ports_to_ignore"):
            changes[key] = _ports(f, key)
        elif key in ("offline", "spire_multicall"):
            changes[key] = f.boolean(key, False)
        elif key == "topology":
            changes[key] = f.choice(key, TOPOLOGIES)
        elif key == "iptables_mode":
            changes[key] = f.choice(key, IPTABLES_MODES)
        elif key == "platform":
            changes[key] = f.choice(key, PLATFORMS)
        elif key == "inbound_default_policy":
            changes[key] = f.choice(key, INBOUND_POLICIES)
        elif key == "trust_domain":
            changes[key] = f.text(key, pattern=DNS_NAME, hint="a DNS name, lowercase")
        elif key == "spire_version":
            changes[key] = f.text(key, pattern=SPIRE_VERSION, hint="like 1.13.3, no leading v")
        elif key == "base_image":
            changes[key] = f.text(key, pattern=IMAGE_REF, hint="an image reference")
        elif key.endswith("_source"):
            changes[key] = read_source(value, f.path(key), base_dir, SettingsError)
        elif key == "catalog":
            # Added after what earlier layers gave; relative paths are the file's (or cwd's).
            changes[key] = (start or Settings()).catalog + _folders(f, key, base_dir)
        elif key == "binaries":
            given = dict((start or Settings()).binaries)
            changes[key] = tuple((given | _binaries(f, key, base_dir)).items())
        elif key == "labels":
            # Added to what earlier layers (the settings file) gave.
            earlier = dict((start or Settings()).labels)
            changes[key] = tuple((earlier | _labels(f, key)).items())
        else:
            changes[key] = f.text(key)
    return replace(start or Settings(), **changes).check()


def load_settings(path: Path | None, overrides: dict[str, Any]) -> Settings:
    """Defaults, then the settings file (if any), then flag overrides."""
    settings = Settings()
    if path is not None:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read the settings file ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML ({exc})") from None
        settings = settings_from_mapping(document, f"{path}:", path.parent, settings)
    flags = {key: value for key, value in overrides.items() if value not in (None, ())}
    if "proxy_file" in flags:
        flags["proxy_source"] = {"file": {"path": str(flags.pop("proxy_file"))}}
    return settings_from_mapping(flags, "flags:", Path.cwd(), settings).check()


def default_settings_file() -> Path | None:
    """`meshexp.yaml` in the current folder, when present."""
    candidate = Path("meshexp.yaml")
    return candidate if candidate.is_file() else None


__all__ = ["FileSource", "Settings", "load_settings", "settings_from_mapping"]
