"""Fixtures for tests against a real Docker engine: the engine, the proxy, certs, images.

Images are built with the real linkerd2-proxy wherever it exists (the test
equipment beside the checkout, or PROXY_FILE; CI always has it) and with the
stand-in only where it does not. In CI (CI=true) a missing engine or a missing
real proxy fails the run; elsewhere these tests skip with the reason.
Containers and networks are removed by the tests themselves (Ryuk,
testcontainers' reaper, cannot be pulled here).
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from builder.build.base_image import build_base
from builder.build.image import ImageResult, build_workload_image
from builder.cluster.certs import create_certs
from builder.config.catalog import find_workload
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings, load_settings
from builder.lab import Lab, running_lab, sources_from_images
from harness import equipment
from tests.conftest import in_ci, need
from tests.upstream_images import preload, shaped_images

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
TEST_IMAGE_NAME = "meshexp-test/{workload}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


# Images a test run leaves on purpose, to be reused by the next run (named in
# the README): the offline base and the content-tagged shared components.
KEPT_REPOSITORIES = (
    "meshexp/debian-base",
    "meshexp/components",
    "meshexp/lab-runtime",
    "meshexp/kind-node",
)


@dataclass(frozen=True)
class EngineState:
    """What the engine holds: image tags, container IDs, network names."""

    tags: frozenset[str]
    containers: frozenset[str]
    networks: frozenset[str]
    dangling: frozenset[str]  # untagged images (a tag moved on to a rebuilt image)

    @classmethod
    def read(cls, client: docker.DockerClient) -> EngineState:
        return cls(
            frozenset(tag for image in client.images.list() for tag in image.tags),
            frozenset(c.id for c in client.containers.list(all=True)),
            frozenset(n.name for n in client.networks.list()),
            frozenset(i.id for i in client.images.list(filters={"dangling": True})),
        )


def kept(tag: str) -> bool:
    return tag.rsplit(":", 1)[0] in KEPT_REPOSITORIES


def clean_up_after(client: docker.DockerClient, before: EngineState) -> list[str]:
    """Remove what the session made (but the kept images); what could not be removed."""
    after = EngineState.read(client)
    for container in after.containers - before.containers:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container).remove(force=True)
    for name in after.networks - before.networks:
        with contextlib.suppress(docker.errors.NotFound):
            client.networks.get(name).remove()
    for tag in sorted(after.tags - before.tags):
        if not kept(tag):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)
    for image in sorted(EngineState.read(client).dangling - before.dangling):
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client.images.remove(image, force=True)
    final = EngineState.read(client)
    return sorted(
        [f"image {tag}" for tag in final.tags - before.tags if not kept(tag)]
        + [f"untagged image {i[7:19]}" for i in final.dangling - before.dangling]
        + [f"container {c[:12]}" for c in final.containers - before.containers]
        + [f"network {n}" for n in final.networks - before.networks]
    )


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """The engine; at the end of the session the machine is left as it was found.

    Every image tag, container and network the tests made is removed, even
    after failures (the kept, reusable images excepted), and the session
    fails if anything is left.
    """
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        need(False, f"no Docker engine answers ({exc}); run scripts/ensure-docker.sh")
    before = EngineState.read(client)
    yield client
    left = clean_up_after(client, before)
    assert not left, f"the tests left these behind: {left}"


def need_real_proxy() -> Path:
    """The real proxy, or a skip (outside CI) / failure (in CI) naming the file."""
    real = equipment.real_proxy()
    need(
        real is not None and real.is_file(),
        f"the real linkerd2-proxy at {equipment.REAL_PROXY} (or PROXY_FILE=/path/to/it)",
    )
    assert real is not None
    return real


@pytest.fixture(scope="session")
def real_proxy() -> Path:
    return need_real_proxy()


@pytest.fixture(scope="session")
def proxy_file() -> Path:
    """The proxy test images carry: the real one wherever it exists (always in CI)."""
    if in_ci():
        return need_real_proxy()
    return equipment.proxy_for_tests()[0]


@pytest.fixture(scope="session")
def proxy_is_real(proxy_file: Path) -> bool:
    return proxy_file == equipment.real_proxy()


@pytest.fixture(scope="session")
def offline_settings(proxy_file: Path) -> Settings:
    return (
        load_settings(None, {"offline": True, "proxy_file": proxy_file})
        .with_(
            image_name=TEST_IMAGE_NAME,
        )
        .check()
    )


@pytest.fixture(scope="session")
def standin_settings(engine) -> Settings:
    """Settings whose images carry the stand-in (for tests of the stand-in itself)."""
    return (
        load_settings(None, {"offline": True, "proxy_file": equipment.standin_proxy()})
        .with_(
            image_name="meshexp-test-standin/{workload}",
        )
        .check()
    )


@pytest.fixture(scope="session")
def build(engine, offline_settings: Settings):
    """Build a catalog workload once per session, offline, with the stand-in."""
    built: dict[str, ImageResult] = {}

    def build_one(name: str) -> ImageResult:
        if name not in built:
            built[name] = build_workload_image(
                workload=find_workload(name), settings=offline_settings
            )
        return built[name]

    return build_one


@pytest.fixture(scope="session")
def smiley_image(build) -> ImageResult:
    return build("smiley")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, issuer.crt, issuer.key, readable by the container's root only."""
    folder = tmp_path_factory.mktemp("certs") / "certs"
    create_certs(folder=folder)
    return folder


@pytest.fixture(scope="session")
def demo_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original demo's layout: ca.crt and ca.key (the trust anchor's own key)."""
    root = tmp_path_factory.mktemp("demo-certs")
    result = create_certs(folder=root / "certs")
    (root / "certs/ca.key").write_bytes(result.anchor_key.read_bytes())
    for name in ("issuer.crt", "issuer.key"):
        (root / "certs" / name).unlink()
    return root / "certs"


@contextlib.contextmanager
def fresh_network(engine, **create: Any) -> Iterator[str]:
    """A bridge network (`create`: more of docker-py's options for it), removed
    afterwards with every container left on it."""
    name = f"meshexp-test-{uuid.uuid4().hex[:8]}"
    net = engine.networks.create(name, driver="bridge", **create)
    try:
        yield name
    finally:
        for container in engine.containers.list(all=True, filters={"network": name}):
            container.remove(force=True)
        net.remove()


def file_in_image(engine: Any, reference: str, path: str) -> bytes:
    """The bytes of one file in an image, read without starting it."""
    container = engine.containers.create(reference)
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None
            return member.read()
    finally:
        container.remove(force=True)


@pytest.fixture
def network(engine) -> Iterator[str]:
    with fresh_network(engine) as name:
        yield name


@pytest.fixture(scope="module")
def module_network(engine) -> Iterator[str]:
    """One network for a module's tests (for module-scoped fixtures that start containers)."""
    with fresh_network(engine) as name:
        yield name


@pytest.fixture(scope="session")
def real_faces() -> dict[str, Path]:
    """The upstream Faces v2.0.0 programs (test equipment; always in CI)."""
    found = equipment.real_faces()
    need(found is not None, f"the upstream Faces programs in {equipment.REAL_FACES}")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def plain_base(engine) -> str:
    """The offline base image, for plain containers that run one program."""
    return build_base(reference=OFFLINE_BASE_IMAGE).reference


@pytest.fixture(scope="session")
def upstream_shaped(
    engine, real_proxy: Path, real_faces: dict[str, Path], plain_base: str
) -> list[str]:
    """Upstream's images, played by upstream-shaped test equipment (tests/upstream_images)
    preloaded in the engine, as a user with a registry would have them after a pull."""
    need(equipment.CONTROL_PLANE.is_dir(), f"Linkerd's programs in {equipment.CONTROL_PLANE}")
    images = shaped_images(
        proxy=real_proxy, faces=real_faces, control_plane=equipment.CONTROL_PLANE
    )
    return preload(engine, images, plain_base)


@contextlib.contextmanager
def started_lab(
    tmp_path_factory: pytest.TempPathFactory, name: str, ipv6: bool = False
) -> Iterator[Lab]:
    """The lab as `lab up` starts it by default (with `ipv6`, as `lab up --ipv6` does):
    Linkerd's programs copied out of upstream's images for the linkerd CLI's release
    (upstream-shaped here, holding the control plane built from source and the real
    proxy)."""
    sources = sources_from_images(
        equipment.CONTROL_PLANE / "linkerd", tmp_path_factory.mktemp(f"{name}-programs")
    )
    with running_lab(
        folder=tmp_path_factory.mktemp(name),
        sources=sources,
        crds=(equipment.LINKERD_CRDS.read_text(),),
        name=name,
        ipv6=ipv6,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lab(
    engine, upstream_shaped: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """The lab as `lab up` starts it by default."""
    with started_lab(tmp_path_factory, "meshexp-test-lab") as running:
        yield running


@pytest.fixture(scope="module")
def mesh_settings(offline_settings: Settings, real_faces: dict[str, Path]) -> Settings:
    """Images with the real proxy and the upstream Faces programs."""
    return offline_settings.with_(
        binaries=dict(real_faces),
        image_name="meshexp-test-mesh/{workload}",
    ).check()
