"""Files that hold secrets (keys, tokens), written whole and with their final mode from
the first byte: a temporary sibling is created (mode 0600 by mkstemp), given its mode
and owner, filled, and renamed over the target. A file already there is replaced by a
new one, so its old mode never carries over."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from builder.core.errors import MeshexpError


def write_files(files: dict[Path, tuple[bytes, int]], owner: int | None = None) -> None:
    """Write each file (data, mode) as the module says; all are renamed into place only
    once every one is written, so a failure leaves none half-written."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, (data, mode) in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=".meshexp-")
            staged.append((Path(name), path))
            os.fchmod(descriptor, mode & 0o600)  # readable and writable by us while written
            if owner is not None:
                os.fchown(descriptor, owner, owner)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
        for temporary, path in staged:
            temporary.replace(path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def write_secret(path: Path, data: bytes, mode: int = 0o600, owner: int | None = None) -> Path:
    """One secret file, with `mode` (and `owner`) before any of its bytes is written."""
    write_files({path: (data, mode)}, owner)
    return path


def path_problem(exc: OSError) -> str:
    """Why a path could not be used, in words a user can act on."""
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a part of it is a file, not a folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "not writable here"
    return exc.strerror or str(exc)


def make_folder(path: Path, what: str, error: type[MeshexpError] = MeshexpError) -> Path:
    """`path` and its parents as folders, or `error` with one line naming it and why."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(
            f"{path}: cannot make the {what} folder there ({path_problem(exc)}); "
            "choose a folder you can write to"
        ) from None
    return path


def is_folder(path: Path) -> bool:
    """Whether `path` is a folder; False, not an error, for a name the system cannot
    even look up (too long, a NUL in it)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def is_plain_file(path: Path) -> bool:
    """Whether `path` is a regular file, as is_folder answers for folders."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
