"""Production topology: an external SPIRE server and agent-only images, for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.build.from_image import from_entry, settle
from builder.build.image import build_workload_image
from builder.check.live import check_identity, check_least_privilege, wait_ready
from builder.check.report import ImageFacts
from builder.cluster.certs import create_node_cert
from builder.cluster.spire_server import build_server_image, register, start_server
from builder.config.catalog import find_workload
from builder.core import image_contract
from builder.core.progress import Progress
from builder.engine import containers, docker_engine
from harness import apps
from tests.integration.conftest import TEST_IMAGE_NAME

FAIL_LIMIT = 90.0  # seconds: a refused agent gives up after SPIRE's own retries


@pytest.fixture(scope="module")
def prod_settings(offline_settings):
    return offline_settings.with_(
        topology="production",
        image_name=TEST_IMAGE_NAME.replace("{workload}", "prod-{workload}"),
    ).check()


@pytest.fixture(scope="module")
def prod_images(engine, prod_settings):
    return {
        name: build_workload_image(workload=find_workload(name), settings=prod_settings)
        for name in ("smiley", "color")
    }


@pytest.fixture
def server(engine, prod_settings, network, certs):
    build_server_image(settings=prod_settings, on_line=lambda line: None)
    name = f"{network}-spire"
    start_server(settings=prod_settings, network=network, name=name, certs=certs)
    return name


def agent_env(server: str, token_path: str = "/run/secrets/join-token") -> dict[str, str]:
    return {"SPIRE_SERVER_ADDRESS": server, "SPIRE_JOIN_TOKEN_FILE": token_path}


def certs_with_token(certs: Path, token_file: Path, into: Path) -> Path:
    """The certs folder plus the workload's join token (a bind-mounted folder)."""
    folder = into / "certs"
    shutil.copytree(certs, folder)
    shutil.copyfile(token_file, folder / "join-token")
    (folder / "join-token").chmod(0o600)
    return folder


def test_images_carry_only_the_agent(engine, prod_images) -> None:
    image = prod_images["smiley"]
    assert image.labels["io.meshexp.spire-topology"] == "production"
    assert "io.meshexp.source.spire-server" not in image.labels
    code = engine.containers.run(
        image.reference,
        ["-c", f"test ! -e {image_contract.SPIRE_SERVER}"],
        entrypoint="bash",
        remove=True,
    )
    assert code == b""


def test_two_agent_only_workloads_get_their_own_svids(
    prod_images, prod_settings, network, certs, server, tmp_path: Path
) -> None:
    workloads = [find_workload("smiley"), find_workload("color")]
    registered = register(
        server=server, settings=prod_settings, workloads=workloads, tokens_dir=tmp_path / "tokens"
    )
    for item in registered:
        assert item.token_file is not None
        assert item.token_file.stat().st_mode & 0o077 == 0
        folder = certs_with_token(certs, item.token_file, tmp_path / item.workload)
        env = agent_env(server, "/opt/spire/certs/join-token")
        image = prod_images[item.workload]
        with containers.mesh_container(
            image=image.reference, network=network, certs=folder, env=env
        ) as box:
            assert "200" in wait_ready(box, 60)
            facts = ImageFacts(image.labels)
            detail = check_identity(box, facts, item.workload, "faces", certs / "ca.crt")
            assert detail.startswith(item.spiffe_id)
            assert "awk=2103" in check_least_privilege(box, facts)
            token = item.token_file.read_text().strip()
            assert token not in box.logs(), "the join token was printed"


def test_wrong_join_token_fails_clearly(prod_images, network, certs, server, tmp_path) -> None:
    fake = tmp_path / "fake.token"
    fake.write_text("00000000-0000-0000-0000-000000000000\n")
    folder = certs_with_token(certs, fake, tmp_path)
    code, logs, seconds = containers.run_to_exit(
        image=prod_images["smiley"].reference,
        network=network,
        certs=folder,
        env=agent_env(server, "/opt/spire/certs/join-token"),
        timeout=FAIL_LIMIT + 30,
    )
    assert code != 0
    assert seconds < FAIL_LIMIT
    assert "the SPIRE server refused the join token" in logs
    assert "00000000-0000-0000-0000-000000000000" not in logs


def test_unreachable_server_fails_fast(prod_images, network, certs, tmp_path) -> None:
    token = tmp_path / "t.token"
    token.write_text("abc-123\n")
    folder = certs_with_token(certs, token, tmp_path)
    code, logs, seconds = containers.run_to_exit(
        image=prod_images["smiley"].reference,
        network=network,
        certs=folder,
        env=agent_env("spire.invalid", "/opt/spire/certs/join-token"),
        timeout=60,
    )
    assert code == 69
    assert seconds < 20
    assert "cannot reach the SPIRE server at spire.invalid:8081 within 5s" in logs


def test_server_of_another_trust_domain_fails_clearly(
    engine, prod_images, prod_settings, network, certs, tmp_path
) -> None:
    other = prod_settings.with_(trust_domain="other.example").check()
    build_server_image(settings=other, on_line=lambda line: None)
    name = f"{network}-other"
    start_server(settings=other, network=network, name=name, certs=certs)
    [item] = register(
        server=name,
        settings=other,
        workloads=[find_workload("smiley")],
        tokens_dir=tmp_path / "tokens",
    )
    assert item.token_file is not None
    folder = certs_with_token(certs, item.token_file, tmp_path)
    code, logs, seconds = containers.run_to_exit(
        image=prod_images["smiley"].reference,
        network=network,
        certs=folder,
        env=agent_env(name, "/opt/spire/certs/join-token"),
        timeout=FAIL_LIMIT + 30,
    )
    assert code != 0
    assert seconds < FAIL_LIMIT
    assert "is not of trust domain root.linkerd.cluster.local" in logs


def test_x509pop_node_certificate_instead_of_a_token(
    prod_images, prod_settings, network, certs, server, tmp_path: Path
) -> None:
    register(
        server=server, settings=prod_settings, workloads=[find_workload("color")], tokens_dir=None
    )
    folder = create_node_cert(certs=certs, name="color", output=tmp_path / "node")
    image = prod_images["color"]
    with containers.mesh_container(
        image=image.reference, network=network, certs=folder, env={"SPIRE_SERVER_ADDRESS": server}
    ) as box:
        assert "200" in wait_ready(box, 60)
        detail = check_identity(box, ImageFacts(image.labels), "color", "faces", certs / "ca.crt")
        assert detail.startswith(
            "spiffe://root.linkerd.cluster.local/ns/faces/externalworkload/color, the SVID's "
            "one name (server name color.faces.externalworkload.cluster.local)"
        )
        assert "BEGIN" not in box.logs()


def test_an_application_image_gets_its_svid_from_the_external_server(
    prod_settings, network, certs, server, real_faces, tmp_path: Path
) -> None:
    """`image --from` in the production topology: the application FROM scratch (no
    shell, no libc) with an agent only, which attests to the external server by its
    join token; the proxy gets the workload's SVID, the workload runs as the image's
    USER."""
    (tmp_path / "app").mkdir()
    with apps.applications(real_faces["smiley"], tmp_path / "app", "prod", ("scratch",)) as made:
        workload = settle(from_entry(made["scratch"], "scratch-app"), prod_settings, Progress())
        built = build_workload_image(workload=workload, settings=prod_settings)
        try:
            assert built.labels[image_contract.SPIRE_TOPOLOGY] == "production"
            [item] = register(
                server=server,
                settings=prod_settings,
                workloads=[workload],
                tokens_dir=tmp_path / "tokens",
            )
            assert item.token_file is not None
            folder = certs_with_token(certs, item.token_file, tmp_path / "with-token")
            env = agent_env(server, "/opt/spire/certs/join-token")
            with containers.mesh_container(
                image=built.reference, network=network, certs=folder, env=env
            ) as box:
                assert "200" in wait_ready(box, 60)
                facts = ImageFacts(built.labels)
                detail = check_identity(box, facts, "scratch-app", "default", certs / "ca.crt")
                assert detail.startswith(item.spiffe_id)
                assert "=65532" in check_least_privilege(box, facts)
        finally:
            docker_engine.remove_image(built.reference)
