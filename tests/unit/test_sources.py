"""Component sources: checksums, missing files, Go builds and their cache keys."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.build import base_image, gobuild
from builder.build.base_image import apt_mirror
from builder.build.sources import download, fetch
from builder.config.sources import FileSource, GoSource, UrlSource
from builder.core.errors import BuildError, SourceError
from builder.core.resources import go_dir

ELF = b"\x7fELF" + b"\0" * 60


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MESHEXP_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A one-folder HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def test_url_source_verified_and_cached(served) -> None:
    base, root = served
    (root / "proxy").write_bytes(ELF)
    digest = hashlib.sha256(ELF).hexdigest()
    path = download(UrlSource.model_construct(url=f"{base}/proxy", sha256=digest))
    assert path.read_bytes() == ELF
    (root / "proxy").unlink()  # a second call must come from the cache
    assert download(UrlSource.model_construct(url=f"{base}/proxy", sha256=digest)) == path


def test_url_checksum_mismatch_uses_nothing(served, private_cache: Path) -> None:
    base, root = served
    (root / "proxy").write_bytes(ELF)
    wrong = "0" * 64
    with pytest.raises(SourceError, match=f"sha256 mismatch: expected {wrong}, got "):
        download(UrlSource.model_construct(url=f"{base}/proxy", sha256=wrong))
    assert not list((private_cache / "url").iterdir())


def test_url_unreachable_names_alternatives(served) -> None:
    base, _ = served
    with pytest.raises(SourceError, match=r"download failed .*alternatives: an image source"):
        download(UrlSource.model_construct(url=f"{base}/missing", sha256="0" * 64))


def test_file_source_missing_or_not_a_binary(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"proxy \(file source\): .*does not exist.*alternatives"):
        fetch(FileSource(path=tmp_path / "nope"), "proxy", "amd64")
    script = tmp_path / "proxy.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(SourceError, match="not a Linux executable"):
        fetch(FileSource(path=script), "proxy", "amd64")


def test_standin_is_recognised_by_its_banner(tmp_path: Path) -> None:
    real, standin = tmp_path / "real", tmp_path / "standin"
    real.write_bytes(ELF)
    standin.write_bytes(ELF + b"PROXY STAND-IN: not a Linkerd proxy")
    assert not fetch(FileSource(path=real), "proxy", "amd64").standin
    assert fetch(FileSource(path=standin), "proxy", "amd64").standin


def test_go_local_build_is_cached_by_content(tmp_path: Path) -> None:
    module = tmp_path / "mod"
    shutil.copytree(go_dir(), module)
    source = GoSource(package="./cmd/certcheck", local=module)
    first = gobuild.cached_go_binary(source, "amd64")
    assert first.read_bytes().startswith(b"\x7fELF")
    stamp = first.stat().st_mtime_ns
    assert gobuild.cached_go_binary(source, "amd64") == first
    assert first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    (module / "cmd/certcheck/extra.go").write_text("package main\n\nconst unused = 1\n")
    assert gobuild.cached_go_binary(source, "amd64") != first  # the tree changed
    arm = gobuild.cached_go_binary(source, "arm64")
    machine = (
        subprocess.run(["file", "-b", str(arm)], capture_output=True, text=True).stdout
        if shutil.which("file")
        else "aarch64"
    )
    assert "aarch64" in machine or "ARM" in machine


def test_go_module_refused_names_the_module_and_alternatives(monkeypatch) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    source = GoSource(package="example.invalid/nothing/cmd/x", version="v1.0.0")
    with pytest.raises(
        SourceError,
        match=r"go source example.invalid/nothing/cmd/x@v1.0.0: "
        r"go get -tool failed",
    ):
        gobuild.cached_go_binary(source, "amd64")


def test_go_missing_toolchain_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SourceError, match="needs the Go toolchain"):
        gobuild.cached_go_binary(GoSource(package="./cmd/x", local=go_dir()), "amd64")


def test_apt_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert apt_mirror((tmp_path / "none", folder)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert apt_mirror((one_line,)) == "http://other.example/debian"
    with pytest.raises(BuildError, match="no Debian mirror found"):
        apt_mirror((tmp_path / "none",))


def test_exclude_block_is_carried_without_its_comments() -> None:
    from builder.build.buildkit_programs import exclude_block

    go_mod = (
        "module github.com/moby/buildkit\n\ngo 1.24\n\nexclude (\n"
        "\t// why they are excluded\n"
        "\tgithub.com/a/b v1.0.1-0.2018\n\tgithub.com/c/d v1.1.2-0.2018\n)\n"
        "\ntool (\n\tx/y\n)\n"
    )
    assert exclude_block(go_mod) == (
        "exclude (\n\tgithub.com/a/b v1.0.1-0.2018\n\tgithub.com/c/d v1.1.2-0.2018\n)\n"
    )
    assert exclude_block("module x\n") == ""


def test_slimming_keeps_each_packages_copyright_file(tmp_path: Path) -> None:
    docs = tmp_path / "usr/share/doc"
    for relative in ("bash/copyright", "bash/README", "bash/examples/x", "tar/changelog.gz"):
        (docs / relative).parent.mkdir(parents=True, exist_ok=True)
        (docs / relative).write_text(relative)
    (docs / "libc-bin").symlink_to("bash")  # Debian links some packages' docs
    base_image._docs_but_copyright(tmp_path)
    left = sorted(str(p.relative_to(docs)) for p in docs.rglob("*"))
    assert left == ["bash", "bash/copyright", "libc-bin"]
    assert (docs / "bash/copyright").read_text() == "bash/copyright"
