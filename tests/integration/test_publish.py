"""Publishing against a real registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from builder.cli import main
from builder.core.errors import BuildError, SettingsError
from builder.core.net import free_port
from builder.engine import docker_engine
from builder.oci.publish import push
from builder.oci.registry import LocalRegistry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with LocalRegistry(tmp_path) as running:
        yield running.address


def test_push_pull_back_and_compare_digests(engine, smiley_image, registry) -> None:
    pushed = push(reference=smiley_image.reference, registry=registry)
    assert pushed.reference == f"{registry}/{smiley_image.reference}"
    assert pushed.digest.startswith("sha256:")
    engine.images.remove(pushed.reference)
    assert docker_engine.pull_image(pushed.reference) == pushed.digest


def publish_one(registry: str, proxy: Path, image_name: str, *extra: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            "publish",
            "--workload",
            "smiley",
            "--registry",
            registry,
            "--offline",
            "--proxy-file",
            str(proxy),
            "--image-name",
            image_name,
            *extra,
        ],
    )


def test_publish_command_prints_digests(
    smiley_image, offline_settings, proxy_is_real: bool, registry
) -> None:
    proxy = offline_settings.proxy().path
    extra = () if proxy_is_real else ("--allow-standin",)  # outside CI: the stand-in
    result = publish_one(registry, proxy, "meshexp-test/{workload}", *extra)
    assert result.exit_code == 0, result.output
    assert f"pushed {registry}/meshexp-test/smiley:linkerd-2.20@sha256:" in result.output


def test_publish_refuses_an_image_with_the_stand_in(standin_settings, registry) -> None:
    proxy = standin_settings.proxy().path
    result = publish_one(registry, proxy, "meshexp-test-standin/{workload}")
    assert result.exit_code == 1, result.output
    assert "push refused: its proxy is the stand-in" in result.output
    assert "--allow-standin" in result.output


def test_unreachable_registry_fails_clearly(smiley_image) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(BuildError, match=f"push of 127.0.0.1:{port}/meshexp-test/smiley"):
        push(reference=smiley_image.reference, registry=f"127.0.0.1:{port}")


def test_rejected_push_fails_clearly(smiley_image, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("someone:$2y$05$abcdefghijklmnopqrstuuDUmmyhashDUmmyhashDUmmyhashDU\n")
    with (
        LocalRegistry(
            tmp_path, f"auth: {{htpasswd: {{realm: test, path: {htpasswd}}}}}\n"
        ) as locked,
        pytest.raises(BuildError, match=r"push of .* (was refused|failed).*(auth|Auth)"),
    ):
        push(reference=smiley_image.reference, registry=locked.address)


def test_malformed_registry_is_refused_before_anything() -> None:
    with pytest.raises(SettingsError, match="is not HOST"):
        push(reference="meshexp/smiley:x", registry="https://bad registry")
