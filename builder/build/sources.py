"""Resolve component sources into files for the build context.

`image` sources stay in the Dockerfile (a build stage); `file`, `url` and
`go` sources become files in the context, recorded with their sha256. A
source that cannot be had fails with the source named and the alternatives.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from builder.build.gobuild import cached_go_binary
from builder.config.sources import (
    BinarySource,
    ComponentSource,
    FileSource,
    FirstOf,
    GoSource,
    ImageSource,
    UrlSource,
    describe_source,
)
from builder.core.cache import cache_root, file_sha256
from builder.core.errors import SourceError
from builder.core.progress import Progress, alternative

STANDIN_BANNER = b"PROXY STAND-IN: not a Linkerd proxy"
ALTERNATIVES = (
    "alternatives: an image source (needs registry access), a file source (a binary "
    "on disk), a url source with its sha256, or a go source (module and version)"
)


@dataclass(frozen=True)
class Fetched:
    """A source resolved to a local file; `source` is the one used (of alternatives)."""

    path: Path
    sha256: str
    standin: bool
    source: BinarySource | None = None


# ELF e_machine values of the architectures we build for.
ELF_MACHINES = {62: "amd64", 183: "arm64"}


def elf_arch(head: bytes) -> str | None:
    """The architecture an ELF header (its first 20 bytes) is for, when it is one we know."""
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] != 1:  # little-endian only
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"))


@functools.lru_cache(maxsize=64)
def _inspect(path: str, size: int, mtime_ns: int) -> tuple[bytes, str, bool]:
    """(the ELF header's first bytes, sha256, carries the stand-in banner), in one pass.

    Memoized by path, size and modification time: a build reads each large
    binary (SPIRE's are 60-170 MB) once, not once per use.
    """
    del size, mtime_ns  # part of the cache key only
    digest = hashlib.sha256()
    head, tail, standin = b"", b"", False
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            if not head:
                head = chunk[:20]
            digest.update(chunk)
            standin = standin or STANDIN_BANNER in tail + chunk
            tail = chunk[-len(STANDIN_BANNER) :]
    return head, digest.hexdigest(), standin


def _check_binary(path: Path, what: str, arch: str) -> Fetched:
    """A binary file for `arch`: an ELF executable of that architecture."""
    if not path.is_file():
        raise SourceError(f"{what}: {path} does not exist or is not a file; {ALTERNATIVES}")
    stat = path.stat()
    head, sha256, standin = _inspect(str(path), stat.st_size, stat.st_mtime_ns)
    if head[:4] != b"\x7fELF":
        raise SourceError(
            f"{what}: {path} is not a Linux executable (ELF); give the binary "
            "itself, not an archive or a script"
        )
    found = elf_arch(head)
    if found is not None and found != arch:
        raise SourceError(
            f"{what}: {path} is a linux/{found} binary, and this build is for linux/{arch}: "
            f"give a linux/{arch} build of it (for the proxy: --proxy-file linux/{arch}=FILE)"
        )
    return Fetched(path=path, sha256=sha256, standin=standin)


def download(source: UrlSource, timeout: float = 60.0) -> Path:
    """Download to the cache (content-addressed) and verify the sha256 before use."""
    target = cache_root() / "url" / source.sha256
    if target.is_file() and file_sha256(target) == source.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        scratch = Path(handle.name)
        try:
            with urllib.request.urlopen(source.url, timeout=timeout) as response:
                shutil.copyfileobj(response, handle)
        except (urllib.error.URLError, OSError) as exc:
            scratch.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise SourceError(
                f"url source {source.url}: download failed ({reason}); {ALTERNATIVES}"
            ) from None
    actual = file_sha256(scratch)
    if actual != source.sha256:
        scratch.unlink(missing_ok=True)
        raise SourceError(
            f"url source {source.url}: sha256 mismatch: expected {source.sha256}, "
            f"got {actual}; the file changed or the checksum is wrong. Nothing "
            "was used"
        )
    scratch.chmod(0o755)
    scratch.replace(target)
    return target


def fetch(
    source: ComponentSource, what: str, arch: str, progress: Progress | None = None
) -> Fetched:
    """Resolve a non-image source to a local, checked file (a Go build reports its phase).

    Of alternatives, the first that can be had is used; progress says why the
    ones before it were passed over, and only when none can be had is it an
    error (naming every reason).
    """
    if isinstance(source, FirstOf):
        reasons = []
        for number, one in enumerate(source.sources, start=1):
            try:
                with alternative(more_after=number < len(source.sources)):
                    return fetch(one, what, arch, progress)
            except SourceError as exc:
                reasons.append(str(exc.message).splitlines()[0])
                if progress is not None:
                    progress.line(f"{what}: passed over {describe_source(one)}: {reasons[-1]}")
        raise SourceError(f"{what}: no alternative could be had: " + " | ".join(reasons))
    return replace(_fetch_one(source, what, arch, progress), source=source)


def _fetch_one(source: BinarySource, what: str, arch: str, progress: Progress | None) -> Fetched:
    if isinstance(source, ImageSource):
        raise ValueError("image sources are copied by a build stage, not fetched")
    if isinstance(source, FileSource):
        return _check_binary(source.path, f"{what} (file source)", arch)
    if isinstance(source, UrlSource):
        return _check_binary(download(source), f"{what} (url source)", arch)
    assert isinstance(source, GoSource)
    return _check_binary(cached_go_binary(source, arch, progress), f"{what} (go source)", arch)
