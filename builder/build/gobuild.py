"""The one module that runs `go`: builds Go sources for the image, cached by content.
The programs built otherwise (kube-apiserver, BuildKit, syft) are recipes of their own
(builder.build.kube_apiserver, .buildkit_programs, .syft) on this module's runner.

A remote package is built as a tool dependency of a throwaway module of our
own (`go get -tool pkg@version`), the way this workplace's module proxy serves
SPIRE. The cache key holds the package, version (or the local tree's digest),
architecture, cgo and the Go version, so a second build does not compile again.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from builder.build.spire_plugins import (
    DERIVATION,
    SPIRE_MODULE,
    configured_plugins,
    copy_module,
    derive_module,
    kept_key,
)
from builder.config.sources import GoSource
from builder.core import process
from builder.core.cache import build_lock, cache_key, cache_root, cached_file, tree_sha256
from builder.core.errors import SourceError
from builder.core.progress import Progress

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
CROSS_CC = {"arm64": "aarch64-linux-gnu-gcc", "amd64": "x86_64-linux-gnu-gcc"}
LDFLAGS = "-s -w"


def _go() -> str:
    found = shutil.which("go")
    if not found:
        raise SourceError(
            "a go source needs the Go toolchain, and `go` is not on PATH: install "
            "Go 1.22 or later, or use an image or file source instead"
        )
    return found


@functools.lru_cache(maxsize=1)
def go_version() -> str:
    result = subprocess.run(
        [_go(), "env", "GOVERSION"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _run(
    command: list[str], cwd: Path, env: dict[str, str], what: str, source: GoSource | str
) -> None:
    """`command` for the Go source `source` (or its description); a failure says which."""
    described = source if isinstance(source, str) else source.describe()
    try:
        process.run(command, cwd=cwd, env=env, what=f"go source {described}: {what}")
    except process.CommandFailed as exc:
        said = str(exc)
        refused = "not available" in said or "403" in said or "410 Gone" in said
        hint = (
            "the Go module proxy refused this module or version; check the version, or use "
            "an image source (registry access) or a file source (a binary you have)"
            if refused
            else "see the Go output above"
        )
        raise SourceError(f"{said}\n{hint}") from None


def run_go(
    args: list[str], cwd: Path, env: dict[str, str], what: str, source: GoSource | str
) -> None:
    """`go ARGS` in `cwd`; a SourceError naming `source` and `what` when it fails."""
    _run([_go(), *args], cwd, env, what, source)


def module_folder(source: GoSource) -> Path:
    """The folder of the module `source` names, as Go's module cache holds it (downloaded
    from the Go module proxy when it is not there yet)."""
    command = [_go(), "mod", "download", "-json", f"{source.package}@{source.version}"]
    env = dict(os.environ, GOFLAGS="")
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = {"Error": (result.stderr or result.stdout).strip()[-400:]}
    if result.returncode != 0 or "Dir" not in answer:
        raise SourceError(
            f"go source {source.describe()}: go mod download failed: {answer.get('Error')}\n"
            "check the module and version, and that the Go module proxy answers"
        )
    return Path(answer["Dir"])


def build_environment(arch: str, cgo: bool) -> dict[str, str]:
    """The environment for `go build`: target OS/arch, cgo, cross compiler where needed."""
    env = dict(
        os.environ, GOOS="linux", GOARCH=arch, CGO_ENABLED="1" if cgo else "0", GOFLAGS="-trimpath"
    )
    if cgo and arch != HOST_ARCH:
        compiler = CROSS_CC[arch]
        if not shutil.which(compiler):
            raise SourceError(
                f"building for {arch} with cgo needs {compiler}: install "
                f"gcc-{'aarch64' if arch == 'arm64' else 'x86-64'}-linux-gnu"
            )
        env["CC"] = compiler
    return env


def cached_go_binary(source: GoSource, arch: str, progress: Progress | None = None) -> Path:
    """Build (or reuse) the binary for `source` and return its path in the cache.

    A build (not a cache hit) is one phase of `progress`, named by the package.
    """
    if source.local and not (source.local / "go.mod").is_file():
        raise SourceError(f"go source {source.describe()}: {source.local} holds no go.mod")
    key = binary_key(source, arch)
    name = source.package.rstrip("/").rsplit("/", 1)[-1]
    if name in (".", "") and source.local is not None:
        name = source.local.name
    what = f"go build {source.describe()} for linux/{arch}"
    return cached_file(
        cache_root() / "go" / key,
        name,
        what,
        lambda scratch: _build_go_binary(source, arch, scratch / name, what, progress),
        progress,
    )


def binary_key(source: GoSource, arch: str) -> str:
    """The cache key of `source`'s binary for `arch`: what decides the bytes."""
    return cache_key(
        package=source.package,
        version=source.version,
        tree=tree_sha256(source.local) if source.local else None,
        arch=arch,
        cgo=source.cgo,
        go=go_version(),
        ldflags=LDFLAGS,
        **_trim_key(source.trim_spire),
    )


def _build_go_binary(
    source: GoSource, arch: str, out: Path, what: str, progress: Progress | None
) -> None:
    env = build_environment(arch, source.cgo)
    with (progress or Progress()).phase(f"{what} (cached afterwards)"):
        if source.version:
            module_dir = tool_module(source, env)
            vendor = ["-mod=vendor"] if source.trim_spire else []
            command = [_go(), "build", *vendor, "-ldflags", LDFLAGS, "-o", str(out)]
        else:
            assert source.local is not None
            module_dir = source.local
            command = [
                _go(),
                "build",
                *_local_modfile(source.local, source.trim_spire, env),
                "-ldflags",
                LDFLAGS,
            ]
            command += ["-o", str(out)]
        _run([*command, source.package], module_dir, env, "go build", source)
        out.chmod(0o755)


def _trim_key(trimmed: bool) -> dict[str, object]:
    """The cache-key part of a trimmed SPIRE: its kept plugins (none for other builds, so
    their keys stay as they were)."""
    if not trimmed:
        return {}
    return {"spire_plugins": kept_key(configured_plugins()), "derivation": DERIVATION}


def trimmed_spire(version: str, env: dict[str, str]) -> Path:
    """SPIRE `version` with only the configured plugins: a copy of the module from the
    module cache with its catalog files derived (spire_plugins.py), cached by content."""
    folder = cache_root() / "spire-module" / cache_key(version=version, **_trim_key(True))
    if (folder / "go.mod").is_file():
        return folder
    with build_lock(folder, f"SPIRE {version} with the configured plugins only"):
        if (folder / "go.mod").is_file():
            return folder
        host_env = dict(env, GOOS="", GOARCH="", GOFLAGS="")
        downloaded = module_download(SPIRE_MODULE, version, folder, host_env)
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            copy = Path(scratch) / "spire"
            copy_module(Path(downloaded["Dir"]), copy)
            derive_module(copy, version, set(configured_plugins()))
            folder.rmdir()  # the lock made it; the finished copy takes its place
            copy.replace(folder)
    return folder


def required_version(go_mod: str, module: str) -> str:
    """The version of `module` a go.mod requires."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", go_mod, re.M)
    if match is None:
        raise SourceError(f"the go.mod does not require {module}")
    return match.group(1)


def _local_modfile(local: Path | None, trimmed: bool, env: dict[str, str]) -> list[str]:
    """`-modfile` for a local module that builds against the trimmed SPIRE: its go.mod
    with a `replace` to the trimmed copy, beside a copy of its go.sum (else nothing)."""
    if not trimmed:
        return []
    assert local is not None
    go_mod = (local / "go.mod").read_text()
    spire = trimmed_spire(required_version(go_mod, SPIRE_MODULE), env)
    folder = (
        cache_root()
        / "gomod"
        / cache_key(
            local=str(local),
            tree=tree_sha256(local, (".mod", ".sum")),
            spire=str(spire),
        )
    )
    modfile = folder / "go.mod"
    if not modfile.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local / "go.sum", folder / "go.sum")
        scratch = folder / "go.mod.partial"
        scratch.write_text(f"{go_mod.rstrip()}\n\nreplace {SPIRE_MODULE} => {spire}\n")
        scratch.replace(modfile)
    return [f"-modfile={modfile}"]


def trimmed_modfile_flag(local: Path) -> str:
    """`-modfile=...` that makes `go vet` and `go test` of the local module `local` see
    the SPIRE the images carry (configured plugins only), as its builds do."""
    (flag,) = _local_modfile(local, True, build_environment(HOST_ARCH, cgo=True))
    return flag


def tool_module(source: GoSource, env: dict[str, str]) -> Path:
    """A module of our own that has `source` as a tool dependency (kept for reuse)."""
    module_dir = (
        cache_root()
        / "gomod"
        / cache_key(package=source.package, version=source.version, **_trim_key(source.trim_spire))
    )

    def ready() -> bool:
        done = (module_dir / "go.sum").is_file()
        return done and (not source.trim_spire or (module_dir / DERIVED_MARK).is_file())

    if ready():
        return module_dir
    # Builds of the same module for several platforms share this folder: one writes it.
    with build_lock(module_dir, f"go get -tool {source.describe()}"):
        if not ready():
            _writetool_module(source, env, module_dir)
    return module_dir


def _writetool_module(source: GoSource, env: dict[str, str], module_dir: Path) -> None:
    host_env = dict(env, GOOS="", GOARCH="")
    if not (module_dir / "go.mod").is_file():
        _run(
            [_go(), "mod", "init", "meshexp.local/tools"],
            module_dir,
            host_env,
            "go mod init",
            source,
        )
    _run(
        [_go(), "get", "-tool", f"{source.package}@{source.version}"],
        module_dir,
        host_env,
        "go get -tool",
        source,
    )
    if source.trim_spire:
        # Vendored, so that the build info still names SPIRE's own version (a replace
        # by a folder would record it as "(devel)" and the folder's path).
        assert source.version is not None
        _run([_go(), "mod", "vendor"], module_dir, host_env, "go mod vendor", source)
        vendored = module_dir / "vendor" / SPIRE_MODULE
        derive_module(vendored, source.version, set(configured_plugins()), vendored=True)
        (module_dir / DERIVED_MARK).write_text("derived\n")


DERIVED_MARK = ".meshexp-derived"


def published_go_mod(module: str, version: str, cwd: Path, env: dict[str, str]) -> str:
    """The go.mod that `module@version` was published with, from the module proxy."""
    return Path(module_download(module, version, cwd, env)["GoMod"]).read_text()


def module_download(module: str, version: str, cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """`go mod download -json module@version`: where the module cache holds it."""
    download = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        raise SourceError(f"{module}@{version}: go mod download failed: {download.stderr}")
    found: dict[str, str] = json.loads(download.stdout)
    return found
