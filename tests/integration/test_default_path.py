"""The default, online path as users with a registry take it: `meshexp-build image
--workload smiley`, with no --offline and no --proxy-file.

No registry can be reached here, so upstream's images are played by upstream-shaped
test equipment (tests/upstream_images.py: the real proxy, SPIRE and Faces programs
under upstream's names, tags and paths), preloaded in the engine, or pushed to a
local registry that plays a mirror with nothing preloaded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from builder.cli.main import main
from builder.config.contract import PROXY_BY_RELEASE
from builder.core import image_contract
from builder.core.net import proxy_readiness
from builder.oci.registry import LocalRegistry, RegistryClient
from harness import equipment
from tests.conftest import need
from tests.integration.conftest import file_in_image, fresh_network
from tests.upstream_images import MIRROR_PATHS, NEWER_RELEASE, PROXY_VERSIONS, fill_mirror

DEFAULT_IMAGE = "meshexp/smiley:linkerd-2.20"
READY = "bootstrap: workload ready ("


def meshexp(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def labels_of(engine: Any, reference: str) -> dict[str, str]:
    return dict(engine.images.get(reference).attrs["Config"]["Labels"])


@pytest.fixture(scope="module")
def default_build(engine, upstream_shaped: list[str]) -> Result:
    """The headline command, exactly as the README gives it."""
    result = meshexp("image", "--workload", "smiley", "--progress", "plain")
    assert result.exit_code == 0, result.output
    return result


def test_the_default_build_takes_upstreams_images_by_release(
    engine, default_build: Result, real_proxy: Path
) -> None:
    labels = labels_of(engine, DEFAULT_IMAGE)
    # The proxy image is tagged by Linkerd release; its version file decides the facts.
    assert labels["io.meshexp.linkerd-release"] == "edge-26.6.3"
    assert labels["io.meshexp.proxy-version"] == PROXY_VERSIONS["edge-26.6.3"]
    assert "proxy v2.359.0 (read from cr.l5d.io/linkerd/proxy:edge-26.6.3)" in (
        default_build.output
    )
    # Preloaded (no registry served them): each named with the engine's image ID.
    for role, upstream in {
        "proxy": "cr.l5d.io/linkerd/proxy:edge-26.6.3",
        "spire-agent": "ghcr.io/spiffe/spire-agent:1.13.3",
        "spire-server": "ghcr.io/spiffe/spire-server:1.13.3",
        "workload.smiley": "ghcr.io/buoyantio/faces-smiley:2.0.0",
    }.items():
        image_id = engine.images.get(upstream).id
        assert labels[f"io.meshexp.source.{role}"].startswith(
            f"image {upstream} (local image {image_id}) "
        ), labels[f"io.meshexp.source.{role}"]
    assert labels["org.opencontainers.image.base.name"] == "debian:bookworm-slim"
    assert "org.opencontainers.image.base.digest" not in labels  # no registry digest to name
    # The proxy in the image is the one the proxy image carries: the real one.
    carried = file_in_image(engine, DEFAULT_IMAGE, image_contract.PROXY)
    assert (
        hashlib.sha256(carried).hexdigest() == hashlib.sha256(real_proxy.read_bytes()).hexdigest()
    )


def test_the_walkthroughs_docker_run_brings_it_up_ready(
    engine, default_build: Result, certs: Path
) -> None:
    """`docker run` as the walk-through's lines do, and the real proxy comes up ready."""
    with fresh_network(engine) as network:
        container = engine.containers.run(
            DEFAULT_IMAGE,
            detach=True,
            network=network,
            cap_add=["NET_ADMIN"],
            volumes={str(certs): {"bind": "/opt/spire/certs", "mode": "ro"}},
            environment={
                "WORKLOAD_NAME": "smiley",
                "WORKLOAD_NAMESPACE": "faces",
                "NODE_NAME": "$(hostname)",
            },
        )
        deadline = time.monotonic() + 120
        while READY not in (logs := container.logs().decode(errors="replace")):
            container.reload()
            assert container.status == "running", logs[-3000:]
            assert time.monotonic() < deadline, logs[-3000:]
            time.sleep(0.5)
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        assert proxy_readiness(ip, timeout=5)[0]
        assert "PROXY STAND-IN" not in logs


def test_check_passes_on_the_default_image(default_build: Result) -> None:
    result = meshexp("check", DEFAULT_IMAGE)
    assert result.exit_code == 0, result.output


def test_a_release_newer_than_the_tables_builds_with_its_images_proxy_version(
    engine, upstream_shaped: list[str]
) -> None:
    assert NEWER_RELEASE not in PROXY_BY_RELEASE
    result = meshexp(
        "image", "--workload", "smiley", "--linkerd-version", NEWER_RELEASE,
        "--image-name", "meshexp-test-newer/{workload}", "--progress", "plain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = labels_of(engine, f"meshexp-test-newer/smiley:linkerd-{NEWER_RELEASE}")
    assert labels["io.meshexp.proxy-version"] == PROXY_VERSIONS[NEWER_RELEASE]
    assert labels["io.meshexp.linkerd-release"] == NEWER_RELEASE


def test_render_of_a_newer_release_reads_the_version_from_the_image(
    upstream_shaped: list[str], tmp_path: Path
) -> None:
    result = meshexp(
        "render", "--workload", "smiley", "--linkerd-version", NEWER_RELEASE,
        "--output", str(tmp_path / "ctx"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    dockerfile = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert f"FROM cr.l5d.io/linkerd/proxy:{NEWER_RELEASE} AS src-proxy" in dockerfile
    assert f'io.meshexp.proxy-version="{PROXY_VERSIONS[NEWER_RELEASE]}"' in dockerfile


@pytest.mark.parametrize(
    ("pull", "said"),
    [
        ("never", "is not in the Docker engine and --pull never forbids pulling it"),
        ("missing", "--offline"),  # no registry answers here: the way out is named
    ],
)
def test_a_missing_image_that_cannot_be_pulled_is_one_line(
    engine, upstream_shaped: list[str], pull: str, said: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["image", "--workload", "smiley", "--linkerd-version", "2.18", "--pull", pull],
    )
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "cr.l5d.io/linkerd/proxy:edge-25.4.4" in line
    assert said in line


MIRROR_RELEASE = "edge-25.10.7"  # the 2.19 line: its images are in the mirror only
DEBIAN = "docker.io/library/debian:bookworm-slim"


@pytest.fixture(scope="module")
def mirror(
    engine, real_proxy: Path, real_faces: dict[str, Path], tmp_path_factory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A local registry holding, under mirror paths, what smiley's online build names for
    the 2.19 line, each for linux/amd64 and linux/arm64; none of it in the engine."""
    need(equipment.CONTROL_PLANE.is_dir(), f"Linkerd's programs in {equipment.CONTROL_PLANE}")
    with LocalRegistry(tmp_path_factory.mktemp("mirror")) as registry:
        digests = fill_mirror(
            engine,
            registry.address,
            release=MIRROR_RELEASE,
            proxy=real_proxy,
            faces=real_faces,
            control_plane=equipment.CONTROL_PLANE,
        )
        yield registry.address, digests


def mirror_flags(host: str) -> list[str]:
    return [
        word for up, path in MIRROR_PATHS.items() for word in ("--mirror", f"{up}={host}/{path}")
    ]


def test_a_build_through_a_mirror_pulls_everything_and_records_the_digests(
    engine, mirror: tuple[str, dict[str, str]]
) -> None:
    host, digests = mirror
    result = meshexp(
        "image", "--workload", "smiley", "--linkerd-version", "2.19", *mirror_flags(host),
        "--image-name", "meshexp-test-mirror/{workload}", "--progress", "plain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = labels_of(engine, "meshexp-test-mirror/smiley:linkerd-2.19")
    assert labels["io.meshexp.proxy-version"] == "v2.326.0"  # read from the mirror's image
    for role, upstream in {
        "proxy": f"cr.l5d.io/linkerd/proxy:{MIRROR_RELEASE}",
        "spire-agent": "ghcr.io/spiffe/spire-agent:1.13.3",
        "workload.smiley": "ghcr.io/buoyantio/faces-smiley:2.0.0",
    }.items():
        pulled = f"{host}/{MIRROR_PATHS[upstream.split('/')[0]]}/{upstream.split('/', 1)[1]}"
        assert f"pull {pulled}" in result.output
        label = labels[f"io.meshexp.source.{role}"]
        assert label.startswith(f"image {upstream}@{digests[upstream]} via {pulled} "), label
    assert labels["org.opencontainers.image.base.digest"] == digests[DEBIAN]
    assert labels["io.meshexp.base-image"] == (
        f"debian:bookworm-slim@{digests[DEBIAN]} via {host}/hub/library/debian:bookworm-slim"
    )


def test_publish_for_two_platforms_through_the_mirror(
    mirror: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """BuildKit pulls every upstream image from the mirror, each platform its own, and
    its SBOM scanner too; the labels name the upstream reference and the index digest."""
    host, digests = mirror
    with LocalRegistry(tmp_path / "target") as target:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "meshexp-build"), "publish",
                "--workload", "smiley", "--platform", "linux/amd64,linux/arm64",
                "--linkerd-version", "2.19", *mirror_flags(host),
                "--registry", target.address, "--image-name", "meshexp-test/{workload}",
                "-o", "json", "--progress", "plain",
            ],
            capture_output=True, text=True, check=False, cwd=equipment.ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        [published] = json.loads(result.stdout)
        client = RegistryClient(target.address)
        for platform in published["platforms"]:
            manifest, _ = client.manifest("meshexp-test/smiley", platform["digest"])
            config = json.loads(client.blob("meshexp-test/smiley", manifest["config"]["digest"]))
            labels = config["config"]["Labels"]
            assert config["architecture"] == platform["platform"].split("/")[1]
            upstream = f"cr.l5d.io/linkerd/proxy:{MIRROR_RELEASE}"
            assert labels["io.meshexp.source.proxy"].startswith(
                f"image {upstream}@{digests[upstream]} via {host}/l5d/linkerd/proxy:"
            )
            assert labels["io.meshexp.proxy-version"] == "v2.326.0"
        index, _ = client.manifest("meshexp-test/smiley", "linkerd-2.19")
        attestations = [
            entry for entry in index["manifests"]
            if (entry.get("annotations") or {}).get("vnd.docker.reference.type")
            == "attestation-manifest"
        ]  # fmt: skip
        assert len(attestations) == 2, index  # one per platform: SBOM (by the mirror's
        for entry in attestations:  # scanner) and provenance
            layers = client.manifest("meshexp-test/smiley", entry["digest"])[0]["layers"]
            predicates = {layer["annotations"]["in-toto.io/predicate-type"] for layer in layers}
            assert "https://spdx.dev/Document" in predicates, predicates
