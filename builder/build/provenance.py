"""Where an image comes from, as OCI labels, derived the way docker/metadata-action does.

`org.opencontainers.image.source` is the git checkout's `origin` remote as an
https URL (registries such as GitHub's link a package to its repository by
it), `revision` its HEAD commit and `created` the build time (or
SOURCE_DATE_EPOCH, for reproducible builds). Outside a git checkout, or
without git, only `created` is set. Credentials in a remote URL never reach a
label. The one module that runs git.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

SCP_REMOTE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def https_source(remote: str) -> str:
    """A git remote (https, ssh or scp-like) as an https URL without credentials or `.git`."""
    remote = remote.strip()
    if "://" in remote:
        scheme_rest = remote.split("://", 1)[1]
        host_path = (
            scheme_rest.split("@", 1)[1] if "@" in scheme_rest.split("/", 1)[0] else scheme_rest
        )
        host, _, path = host_path.partition("/")
        host = host.split(":", 1)[0]  # drop an ssh port
    else:
        match = SCP_REMOTE.match(remote)
        if match is None:
            return ""
        host, path = match["host"], match["path"]
    path = path.removesuffix("/").removesuffix(".git")
    return f"https://{host}/{path}" if host and path else ""


def created_at(environ: dict[str, str] | None = None) -> str:
    """Now, or SOURCE_DATE_EPOCH when set, in RFC 3339 UTC."""
    epoch = (environ if environ is not None else os.environ).get("SOURCE_DATE_EPOCH", "")
    moment = (
        dt.datetime.fromtimestamp(int(epoch), dt.UTC)
        if epoch.isdigit()
        else dt.datetime.now(dt.UTC)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def revision_and_source(folder: Path) -> tuple[str, str]:
    """The checkout's HEAD commit and its origin as an https URL ("" where unknown)."""
    revision = _git(folder, "rev-parse", "HEAD")
    if not revision:
        return "", ""
    return revision, https_source(_git(folder, "config", "--get", "remote.origin.url"))


def provenance_labels(folder: Path) -> tuple[tuple[str, str], ...]:
    """created, and revision and source where `folder` is inside a git checkout."""
    labels = [("org.opencontainers.image.created", created_at())]
    revision, source = revision_and_source(folder)
    if revision:
        labels.append(("org.opencontainers.image.revision", revision))
    if source:
        labels.append(("org.opencontainers.image.source", source))
    return tuple(labels)
