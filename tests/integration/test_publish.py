"""Publishing against a real registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder import docker_engine
from builder.cli import main
from builder.errors import BuildError, SettingsError
from builder.publish import push


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(root: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is missing: apt-get install docker-registry (scripts/setup.sh)"
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n{extra}"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the registry did not listen within 30 s")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    process, address = start_registry(tmp_path)
    try:
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_push_pull_back_and_compare_digests(engine, smiley_image, registry) -> None:
    pushed = push(reference=smiley_image.reference, registry=registry)
    assert pushed.reference == f"{registry}/{smiley_image.reference}"
    assert pushed.digest.startswith("sha256:")
    engine.images.remove(pushed.reference)
    assert docker_engine.pull_image(pushed.reference) == pushed.digest


def test_publish_command_prints_digests(smiley_image, offline_settings, registry) -> None:
    result = CliRunner().invoke(
        main,
        [
            "publish",
            "--workload",
            "smiley",
            "--registry",
            registry,
            "--offline",
            "--proxy-file",
            str(offline_settings.proxy().path),  # type: ignore[union-attr]
            "--image-name",
            "meshexp-test/{workload}",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert f"pushed {registry}/meshexp-test/smiley:linkerd-2.20@sha256:" in result.output


def test_unreachable_registry_fails_clearly(smiley_image) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(BuildError, match=f"push of 127.0.0.1:{port}/meshexp-test/smiley"):
        push(reference=smiley_image.reference, registry=f"127.0.0.1:{port}")


def test_rejected_push_fails_clearly(smiley_image, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("someone:$2y$05$abcdefghijklmnopqrstuuDUmmyhashDUmmyhashDUmmyhashDU\n")
    process, address = start_registry(
        tmp_path, f"auth: {{htpasswd: {{realm: test, path: {htpasswd}}}}}\n"
    )
    try:
        with pytest.raises(BuildError, match=r"push of .* (was refused|failed).*(auth|Auth)"):
            push(reference=smiley_image.reference, registry=address)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_malformed_registry_is_refused_before_anything() -> None:
    with pytest.raises(SettingsError, match="is not HOST"):
        push(reference="meshexp/smiley:x", registry="https://bad registry")
