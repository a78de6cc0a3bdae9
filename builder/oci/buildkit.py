"""The one module that runs BuildKit: buildkitd (ours, or one the user gives) and buildctl.

Where no builder address is given, buildkitd and buildctl are built from the
Go module proxy (cached) and buildkitd is started for the length of one
command, as root, with the OCI worker (runc), a state folder in the cache (so
its layer cache outlives it) and a socket of its own. Registries on this
machine are spoken to over plain HTTP.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.build.buildkit_programs import cached_buildkit
from builder.build.gobuild import HOST_ARCH
from builder.core.cache import cache_root
from builder.core.errors import BuildError
from builder.core.progress import Progress, stream_command
from builder.core.wait import NotYet, TimedOut, until

BUILDKIT_VERSION = "v0.34.2"
QEMU_NAMES = {"arm64": "aarch64", "amd64": "x86_64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Builder:
    """A buildkitd to build with: its address and the buildctl that speaks to it."""

    address: str
    buildctl: Path

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.buildctl), "--addr", self.address, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def platforms(self) -> list[str]:
        """The platforms its workers build for; fails with one line when it does not answer."""
        try:
            answer = self.run("debug", "workers", "--format", "{{json .}}", timeout=30)
        except subprocess.TimeoutExpired:
            answer = subprocess.CompletedProcess([], 1, "", "no answer within 30 s")
        if answer.returncode != 0:
            raise BuildError(
                f"the builder at {self.address} does not answer ({last_error(answer.stderr)}): "
                "start it, or drop --builder to let meshexp-build start its own buildkitd"
            )
        workers = json.loads(answer.stdout or "[]")
        found = []
        for worker in workers:
            for platform in worker.get("platforms") or []:
                if not platform.get("variant"):
                    found.append(f"{platform.get('os')}/{platform.get('architecture')}")
        return found


def last_error(stderr: str) -> str:
    """The line of buildctl's output that says what failed (its last `error:` line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
        if line.startswith("ERROR:"):
            return line
    return lines[-1] if lines else "no output"


PUSH_FAILED = re.compile(r"failed to push (?P<target>\S+?):? .*?(?P<status>\b(401|403)\b[^:]*)")


def push_refusal(error: str) -> str | None:
    """One line for a push the registry refused (401/403), naming the fix; else None."""
    match = PUSH_FAILED.search(error)
    if match is None:
        return None
    target = match["target"]
    host = target.split("/", 1)[0]
    return (
        f"the registry refused the push of {target} ({match['status'].strip()}): log in with "
        f"`docker login {host}` (meshexp-build and buildctl read DOCKER_CONFIG, else "
        "~/.docker/config.json), or push where you may"
    )


def emulation_missing(platform: str) -> str | None:
    """Why `platform` cannot run here (no qemu in binfmt_misc), or None when it can."""
    arch = platform.split("/")[1]
    if arch == HOST_ARCH:
        return None
    entry = BINFMT / f"qemu-{QEMU_NAMES.get(arch, arch)}"
    try:
        enabled = entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        enabled = False
    if enabled:
        return None
    return (
        f"{platform} needs emulation to run its build steps here, and binfmt_misc has no "
        f"enabled {entry.name}: apt-get install qemu-user-static binfmt-support, then "
        f"mount -t binfmt_misc binfmt_misc {BINFMT} && update-binfmts --enable {entry.name} "
        "(scripts/setup.sh does this)"
    )


def daemon_config(state: Path, socket: Path, insecure: list[str]) -> str:
    """buildkitd.toml: OCI worker for amd64 and arm64, containerd worker off, the
    registries on this machine over HTTP."""
    lines = [
        f'root = "{state}"',
        "[grpc]",
        f'  address = ["unix://{socket}"]',
        "[worker.oci]",
        "  enabled = true",
        '  snapshotter = "overlayfs"',
        '  platforms = ["linux/amd64", "linux/arm64"]',
        "  gc = true",
        "  gckeepstorage = 10000",
        "[worker.containerd]",
        "  enabled = false",
    ]
    for host in dict.fromkeys(insecure):  # buildkitd refuses a registry named twice
        lines += [f'[registry."{host}"]', "  http = true", "  insecure = true"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def own_builder(insecure: list[str], progress: Progress) -> Iterator[Builder]:
    """buildkitd of our own for the length of the block (root only; one at a time)."""
    if os.geteuid() != 0:
        raise BuildError(
            "meshexp-build starts its own buildkitd only as root (it runs build steps "
            "with runc): run as root, or give --builder ADDRESS of a running buildkitd"
        )
    path = os.pathsep.join([*SBIN, os.environ.get("PATH", "")])
    if shutil.which("runc", path=path) is None:
        raise BuildError("buildkitd needs runc: apt-get install runc (docker.io brings it)")
    programs = cached_buildkit(BUILDKIT_VERSION, progress)
    state = cache_root() / "buildkit"
    state.mkdir(parents=True, exist_ok=True)
    with (state / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildError(
                f"another meshexp-build is using the builder state in {state}: wait for it, "
                "or give --builder ADDRESS"
            ) from None
        with tempfile.TemporaryDirectory(prefix="meshexp-buildkit-") as scratch:
            socket = Path(scratch) / "buildkitd.sock"
            config = Path(scratch) / "buildkitd.toml"
            config.write_text(daemon_config(state / "root", socket, insecure))
            log_path = state / "buildkitd.log"
            with log_path.open("wb") as log:
                daemon = subprocess.Popen(
                    [str(programs["buildkitd"]), "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, PATH=path),
                )
            builder = Builder(f"unix://{socket}", programs["buildctl"])
            try:
                _wait_until_answers(builder, daemon, log_path)
                yield builder
            finally:
                daemon.terminate()
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


def _wait_until_answers(builder: Builder, daemon: subprocess.Popen[bytes], log: Path) -> None:
    def answers() -> bool | NotYet:
        if daemon.poll() is not None:
            return False  # it exited: its log says why
        if builder.run("debug", "workers", timeout=10).returncode == 0:
            return True
        return NotYet("buildctl debug workers failed")

    with contextlib.suppress(TimedOut):
        if until(answers, timeout=60, interval=0.3):
            return
    tail = log.read_text(errors="replace")[-800:]
    raise BuildError(f"buildkitd did not answer within 60 s; its log ({log}) ends:\n{tail}")


def given_builder(address: str, progress: Progress) -> Builder:
    """A buildkitd the user runs, spoken to with our buildctl."""
    return Builder(address, cached_buildkit(BUILDKIT_VERSION, progress)["buildctl"])


def build(
    builder: Builder,
    *,
    context: Path,
    platform: str,
    output: str,
    opts: dict[str, str],
    on_line: Callable[[str], None],
) -> dict[str, str]:
    """`buildctl build` of the Dockerfile in `context` for one platform; its metadata.

    Each output line goes to `on_line`; a failure raises with buildctl's own
    error line.
    """
    with tempfile.TemporaryDirectory(prefix="meshexp-buildctl-") as scratch:
        metadata = Path(scratch) / "metadata.json"
        command = [
            str(builder.buildctl),
            "--addr",
            builder.address,
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            f"context={context}",
            "--local",
            f"dockerfile={context}",
            "--opt",
            f"platform={platform}",
            "--output",
            output,
            "--metadata-file",
            str(metadata),
            "--progress",
            "plain",
        ]
        for key, value in opts.items():
            command += ["--opt", f"{key}={value}"]
        code, tail = stream_command(command, on_line)
        if code != 0:
            error = last_error("\n".join(tail))
            refusal = push_refusal(error)
            if refusal:
                raise BuildError(refusal)
            raise BuildError(f"the {platform} build failed: {error}\n" + "\n".join(tail[-8:]))
        data = json.loads(metadata.read_text()) if metadata.is_file() else {}
    return {key: value for key, value in data.items() if isinstance(value, str)}
