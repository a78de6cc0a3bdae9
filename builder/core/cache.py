"""The on-disk cache for expensive component builds, addressed by content."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def cache_root() -> Path:
    """`$MESHEXP_CACHE_DIR`, else `$XDG_CACHE_HOME/meshexp-build`, else ~/.cache/meshexp-build."""
    explicit = os.environ.get("MESHEXP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshexp-build"


def cache_key(**parts: object) -> str:
    """A stable key for a set of inputs: same inputs, same key."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def link_or_copy(source: Path, target: Path) -> None:
    """Put `source` at `target` without copying its bytes where one file system allows."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: Path, suffixes: tuple[str, ...] = (".go", ".mod", ".sum")) -> str:
    """A digest of the files under root that decide a build (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
