"""SPIRE with only the plugins our configs name: the catalog files derived at build time.

SPIRE links every built-in plugin (and the AWS, Azure, GCP, Vault and Kubernetes
SDKs behind them) through one `BuiltIns()` list per plugin type in
`pkg/{server,agent}/catalog/*.go`. A package no longer imported there is neither
compiled nor linked. So the module is copied out of the module cache, those files
are rewritten without the plugins the rendered configs do not name, and builds
point at the copy with a `replace` directive. No SPIRE source is committed.

The rewrite checks the shape of every file it touches: a SPIRE version that
changes it stops the build with one line naming the file and the setting that
gives the full build, rather than silently giving a different binary.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.build.spire_configs import every_config
from builder.core.errors import SourceError

SPIRE_MODULE = "github.com/spiffe/spire"
FULL_BUILD_SETTING = "spire_plugins: all (or --spire-plugins all)"
SIDES = ("server", "agent")
# The plugin types the core holds itself (no BuiltIns() list): their one built-in.
CORE_PLUGINS = {("server", "DataStore"): "sql"}
# Bump when the derivation changes, so that cached copies of the module are remade.
DERIVATION = 2

_IMPORT_BLOCK = re.compile(r"^import \((.*?)^\)", re.S | re.M)
_IMPORT_LINE = re.compile(r'^\s*(?:(\w+)\s+)?"([^"]+)"\s*$')
_BUILTINS = re.compile(
    r"\) BuiltIns\(\) \[\]catalog\.BuiltIn \{\s*return \[\]catalog\.BuiltIn\{(.*?)\}\s*\}", re.S
)
_ENTRY = re.compile(r"^(\w+)\.BuiltIn\(\)$")
_CONFIG_PLUGIN = re.compile(r'^\s*([A-Z]\w*) "([^"]+)" \{', re.M)


@dataclass(frozen=True)
class Plugin:
    """One plugin a config names: which program, which type, which built-in."""

    side: str
    type: str
    name: str

    @property
    def package(self) -> str:
        """SPIRE's package folder for it: the name without '_' and '-' (join_token ->
        jointoken, cert-manager -> certmanager)."""
        return re.sub(r"[_-]", "", self.name)

    def __str__(self) -> str:
        return f"{self.side} {self.type} {self.name!r}"


class ShapeError(SourceError):
    """A catalog file is not what the derivation knows how to trim."""


def plugins_in_config(side: str, text: str) -> set[Plugin]:
    """The plugins a rendered SPIRE config names (`Type "name" {` in its plugins block)."""
    _, found, body = text.partition("\nplugins {")
    if not found:
        raise SourceError(f"a SPIRE {side} config without a plugins block; this is a bug")
    return {Plugin(side, kind, name) for kind, name in _CONFIG_PLUGIN.findall(body)}


def kept_key(kept: Iterable[Plugin]) -> list[str]:
    """The kept plugins as sorted words, for cache keys."""
    return sorted(str(plugin) for plugin in kept)


def describe_kept(kept: Iterable[Plugin]) -> list[str]:
    """The kept plugins for people: `server/NodeAttestor/join_token`, sorted."""
    return sorted(f"{p.side}/{p.type}/{p.name}" for p in kept)


def derive_catalog_file(text: str, where: str, side: str, kept: set[Plugin]) -> str:
    """`text` (one of SPIRE's catalog files) without the built-ins not in `kept`.

    Raises ShapeError when the file is not an import block plus one BuiltIns()
    list whose entries are exactly the plugin packages it imports.
    """
    if ") BuiltIns() " not in text:
        return text  # not a list of built-ins (catalog.go wires the repositories)
    imports = _IMPORT_BLOCK.search(text)
    if imports is None:
        raise _shape(where, "no import block")
    plugins = _plugin_imports(imports.group(1), where, side)
    if not plugins:
        raise _shape(where, "a BuiltIns() list but no plugin imports")
    kinds = {kind for kind, _ in plugins.values()}
    if len(kinds) != 1:
        raise _shape(where, f"plugins of several types ({', '.join(sorted(kinds))})")
    listing = _BUILTINS.search(text)
    if listing is None:
        raise _shape(where, "no `BuiltIns() []catalog.BuiltIn { return ... }` list")
    entries = _entries(listing.group(1), where)
    if sorted(entries) != sorted(plugins):
        raise _shape(where, "its BuiltIns() list and its plugin imports differ")
    (kind,) = kinds
    wanted = {plugin.package for plugin in kept if plugin.type.lower() == kind}
    missing = wanted - {folder for _, folder in plugins.values()}
    if missing:
        raise _shape(where, f"no built-in {sorted(missing)[0]!r} to keep")
    keep = [name for name in entries if plugins[name][1] in wanted]
    dropped = set(entries) - set(keep)
    return _rewrite(text, imports, listing, keep, dropped, where)


def _plugin_imports(block: str, where: str, side: str) -> dict[str, tuple[str, str]]:
    """identifier -> (plugin type folder, plugin folder) of the block's plugin imports."""
    prefix = f"{SPIRE_MODULE}/pkg/{side}/plugin/"
    found: dict[str, tuple[str, str]] = {}
    for line in block.splitlines():
        if not line.strip() or line.strip().startswith("//"):
            continue
        match = _IMPORT_LINE.match(line)
        if match is None:
            raise _shape(where, f"an import line it cannot read: {line.strip()!r}")
        alias, path = match.groups()
        parts = path.removeprefix(prefix).split("/")
        if path.startswith(prefix) and len(parts) == 2:
            found[alias or parts[1]] = (parts[0], parts[1])
    return found


def _entries(listing: str, where: str) -> list[str]:
    names = []
    for item in (part.strip() for part in listing.split(",")):
        if not item:
            continue
        match = _ENTRY.match(item)
        if match is None:
            raise _shape(where, f"a BuiltIns() entry it cannot read: {item!r}")
        names.append(match.group(1))
    return names


def _rewrite(
    text: str,
    imports: re.Match[str],
    listing: re.Match[str],
    keep: list[str],
    dropped: set[str],
    where: str,
) -> str:
    body = "".join(f"\n\t\t{name}.BuiltIn()," for name in keep) + ("\n\t" if keep else "")
    start, end = listing.span(1)
    rewritten = text[:start] + body + text[end:]
    block = imports.group(1)
    kept_lines = [line for line in block.splitlines() if _imported_name(line) not in dropped]
    rewritten = rewritten.replace(block, "\n".join(kept_lines) + "\n", 1)
    for name in dropped:
        if re.search(rf"\b{name}\.", rewritten):
            raise _shape(where, f"{name!r} is used outside its BuiltIns() list")
    return rewritten


def _imported_name(line: str) -> str | None:
    match = _IMPORT_LINE.match(line)
    if match is None:
        return None
    alias, path = match.groups()
    return alias or path.rsplit("/", 1)[-1]


def _shape(where: str, problem: str) -> ShapeError:
    return ShapeError(
        f"SPIRE's {where} has a shape meshexp-build cannot trim ({problem}); "
        f"build the full SPIRE with {FULL_BUILD_SETTING}"
    )


def derive_module(root: Path, version: str, kept: set[Plugin], vendored: bool = False) -> None:
    """Rewrite the catalog files of the SPIRE module copy at `root` in place (a vendored
    copy holds only the program's side: the other is skipped)."""
    for side in SIDES:
        if vendored and not (root / "pkg" / side / "catalog").is_dir():
            continue
        on_side = {plugin for plugin in kept if plugin.side == side}
        for kind, name in CORE_PLUGINS.items():
            asked = {p.name for p in on_side if (p.side, p.type) == kind}
            if asked - {name}:
                raise _shape(f"{version} {side}", f"its only {kind[1]} is {name!r}")
        catalog = root / "pkg" / side / "catalog"
        files = sorted(p for p in catalog.glob("*.go") if not p.name.endswith("_test.go"))
        if not files:
            raise _shape(f"{version} pkg/{side}/catalog", "no Go files")
        found_types = set()
        for path in files:
            where = f"{version} {path.relative_to(root)}"
            text = path.read_text()
            derived = derive_catalog_file(text, where, side, on_side)
            found_types |= _types_of(text, side)
            if derived != text:
                path.chmod(0o644)
                path.write_text(derived)
        wanted_types = {p.type.lower() for p in on_side if (side, p.type) not in CORE_PLUGINS}
        if wanted_types - found_types:
            missing = sorted(wanted_types - found_types)[0]
            raise _shape(f"{version} pkg/{side}/catalog", f"no BuiltIns() list of {missing}")


def _types_of(text: str, side: str) -> set[str]:
    """The plugin types whose built-ins `text` lists."""
    imports = _IMPORT_BLOCK.search(text)
    if imports is None or ") BuiltIns() " not in text:
        return set()
    return {kind for kind, _ in _plugin_imports(imports.group(1), "", side).values()}


def copy_module(source: Path, target: Path) -> None:
    """A writable copy of a module from the read-only module cache."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)


@functools.cache
def configured_plugins() -> frozenset[Plugin]:
    """Every plugin a config we render names: the demo image's server and agent, the
    production image's agents, and the production topology's own SPIRE server."""
    kept: set[Plugin] = set()
    for side, text in every_config():
        kept |= plugins_in_config(side, text)
    return frozenset(kept)
