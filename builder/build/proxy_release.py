"""What a proxy binary says it is: the release line it logs first thing.

linkerd2-proxy logs `release <version> (<git sha>) by <vendor> on <date>`
before it reads its configuration, then exits 64 when that configuration is
missing. Started with an empty environment, it tells us exactly which build a
`--proxy-file` is, so the image's label says what is inside rather than what
the settings' Linkerd-to-proxy table expects. The stand-in says so by its
banner. A binary for another architecture than the host's is not run.
"""

from __future__ import annotations

import functools
import platform
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

RELEASE_LINE = re.compile(
    r"release (?P<version>\S+) \((?P<sha>[0-9a-f]+)\) by (?P<vendor>\S+)(?: on (?P<date>\S+))?"
)
STANDIN_LINE = "PROXY STAND-IN: not a Linkerd proxy"
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")


@dataclass(frozen=True)
class ProxyRelease:
    """The proxy's own account of itself."""

    version: str
    sha: str = ""
    vendor: str = ""
    standin: bool = False

    @property
    def label(self) -> str:
        if self.standin:
            return "standin"
        return f"{self.version} ({self.sha}) by {self.vendor}" if self.sha else self.version


def parse_release(output: str) -> ProxyRelease | None:
    """The release the proxy's first lines name, or None when they name none."""
    if STANDIN_LINE in output:
        return ProxyRelease(version="standin", standin=True)
    match = RELEASE_LINE.search(output)
    if match is None:
        return None
    return ProxyRelease(match["version"], match["sha"], match["vendor"])


@functools.lru_cache(maxsize=16)
def _ask(path: str, sha256: str) -> ProxyRelease | None:
    del sha256  # part of the cache key only: a changed file is asked again
    with tempfile.TemporaryDirectory(prefix="meshexp-proxy-") as scratch:
        try:
            done = subprocess.run(
                [path],
                env={},
                cwd=scratch,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=15,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    return parse_release(done.stdout + done.stderr)


def proxy_release(path: Path, sha256: str, arch: str) -> ProxyRelease | None:
    """Ask the binary at `path` which release it is, when it can run on this host."""
    if arch != HOST_ARCH:
        return None
    return _ask(str(path), sha256)
