"""The on-disk cache for expensive component builds, addressed by content."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from builder.core.progress import Progress


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


def tree_sha256(root: Path, suffixes: tuple[str, ...] | None = (".go", ".mod", ".sum")) -> str:
    """A digest of the files under root that decide a build (names and contents); every
    file when `suffixes` is None."""
    digest = hashlib.sha256()
    chosen = (
        p for p in root.rglob("*") if p.is_file() and (suffixes is None or p.suffix in suffixes)
    )
    for path in sorted(chosen):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def build_lock(folder: Path, what: str, progress: Progress | None = None) -> Iterator[None]:
    """Hold `folder`'s build lock: one build of a cache entry at a time, across threads and
    processes (several CI jobs on one machine). A caller re-checks the entry once it holds
    the lock, so an expensive build is done once and the others reuse it."""
    folder.mkdir(parents=True, exist_ok=True)
    locks = cache_root() / "locks"  # apart, so that an entry holds only what was built
    locks.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    with (locks / f"{name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with (progress or Progress()).phase(f"{what}: another build of it runs; waiting"):
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_files(
    folder: Path,
    names: Sequence[str],
    what: str,
    build: Callable[[Path], None],
    progress: Progress | None = None,
) -> list[Path]:
    """The files `names` of the cache entry `folder`, built once: where one is missing,
    `build(scratch)` is called with the entry's lock held (and the entry looked at again,
    another process may have built it meanwhile) to write each name into a scratch
    folder beside them; each then takes its place by a rename, so that no reader sees a
    half-written file and a failed build leaves none."""
    targets = [folder / name for name in names]
    if all(target.is_file() for target in targets):
        return targets
    with build_lock(folder, what, progress):
        if all(target.is_file() for target in targets):
            return targets
        with tempfile.TemporaryDirectory(dir=folder, prefix=".building-") as scratch:
            build(Path(scratch))
            for target in targets:
                (Path(scratch) / target.name).replace(target)
    return targets


def cached_file(
    folder: Path,
    name: str,
    what: str,
    build: Callable[[Path], None],
    progress: Progress | None = None,
) -> Path:
    """One file of a cache entry, as cached_files builds it."""
    return cached_files(folder, [name], what, build, progress)[0]
