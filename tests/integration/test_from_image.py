"""Any application image joins the mesh (`image --from`): three images unlike our base,
made here (test equipment, harness/apps.py):

- a Python HTTP service on Debian (python3 from Debian's packages), USER app, WORKDIR;
- a musl program with the musl loader and nothing else: no glibc, no shell;
- FROM scratch, a static Go program (the real Faces smiley), USER 65532.

For each, the meshed image comes up ready with the real proxy as the walk-through's
`docker run` starts it, the workload runs as the image's user, `check` passes every
check, a `docker restart` comes back ready, and `docker stop` reaches the application;
on scratch, the proxy's SVID (30 s) rotates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.build.from_image import from_entry
from builder.build.image import build_workload_image
from builder.check.checks import check_image
from builder.cli.main import main
from builder.config.catalog import load_workload_file
from builder.config.settings import Settings
from builder.core import image_contract, wait
from builder.core.net import proxy_readiness
from builder.engine import containers, docker_engine
from harness import apps
from harness.load import identity_refreshes

TAG = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def applications(
    plain_base: str, real_faces: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The three application images, removed again afterwards."""
    with apps.applications(real_faces["smiley"], tmp_path_factory.mktemp("app"), TAG) as made:
        yield made


# GET /exit/3 from inside the container: the Python service ends with code 3.
EXIT_3 = 'exec 3<>/dev/tcp/127.0.0.1/8080; printf "GET /exit/3 HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3'

# A 30 s SVID, renewed at about half its life (README, "Rotation").
SHORT_SVID = {"SPIRE_SVID_TTL": "30s"}

# What each runs as, and what it says when told to stop (the Faces smiley says nothing).
EXPECTED = {
    "python": (1000, "app: got SIGTERM"),
    "musl": (1000, "app: got SIGTERM"),
    "scratch": (65532, None),
}


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_an_application_image_joins_the_mesh(
    app: str, applications: dict[str, str], offline_settings: Settings, certs: Path, network: str
) -> None:
    uid, says_on_stop = EXPECTED[app]
    built = build_workload_image(
        workload=from_entry(applications[app], f"{app}-app"), settings=offline_settings
    )
    assert not built.standin
    labels = built.labels
    assert labels["org.opencontainers.image.base.name"] == applications[app]
    assert labels[image_contract.WORKLOAD_UID] == str(uid)
    try:
        with containers.mesh_container(
            image=built.reference, network=network, certs=certs, env=SHORT_SVID
        ) as box:
            wait.until(
                lambda: image_contract.WORKLOAD_READY_LINE in box.logs() or wait.NotYet("no"),
                timeout=60,
            )
            if app == "scratch":  # the SVID rotates: the proxy installs a second one
                wait.until(
                    lambda: identity_refreshes(box.ip) >= 2 or wait.NotYet("one SVID so far"),
                    timeout=90,
                )
            # docker restart: the bootstrap runs again over what the first run left.
            box.restart(timeout=120)
            containers.wait_for_log_count(box, image_contract.WORKLOAD_READY_LINE, 2, 60)
            _, exit_code = box.stop_timed()
            logs = box.logs()
        assert logs.count("traffic capture installed") == 2
        assert "bootstrap: received SIGTERM" in logs
        assert exit_code == 143
        if says_on_stop:
            assert says_on_stop in logs, logs[-2000:]
        if app == "python":  # the application's own exit code becomes the container's
            with containers.mesh_container(
                image=built.reference, network=network, certs=certs, env={}
            ) as box:
                box.exec(["bash", "-c", EXIT_3])
                assert box.wait_for_exit(timeout=60) == 3
                assert "workload python-app exited with code 3" in box.logs()
        report = check_image(image=built.reference, certs=certs)
        failed = {r.name: r.detail for r in report.results if not r.passed}
        assert failed == {}, failed
        # Each process as its own UID: the workload as the image's user.
        (privilege,) = [r.detail for r in report.results if r.name == "least privilege"]
        assert f"={uid}" in privilege, privilege
    finally:
        docker_engine.remove_image(built.reference)


def test_workloads_new_from_an_image_writes_what_its_config_says(
    applications: dict[str, str], tmp_path: Path
) -> None:
    """`workloads new NAME --from IMAGE` on the Python application: the entry names the
    image's command, user, folder and port as `docker inspect` shows them, and renders."""
    image = applications["python"]
    config = docker_engine.image_attrs(image)["Config"]
    folder = tmp_path / "images"
    runner = CliRunner()
    made = runner.invoke(
        main, ["workloads", "new", "shop", "--from", image, "--dir", str(folder), "--pull", "never"]
    )
    assert made.exit_code == 0, made.output
    entry = load_workload_file(folder / "shop.yaml")
    assert list(entry.command) == [*(config.get("Entrypoint") or []), *config["Cmd"]]
    assert entry.user is not None
    assert entry.user.name == config["User"]
    assert entry.workdir == config["WorkingDir"]
    assert [f"{p.port}/{p.protocol.lower()}" for p in entry.ports] == list(config["ExposedPorts"])
    greeting = next(pair for pair in config["Env"] if pair.startswith("GREETING="))
    assert f'#   GREETING: "{greeting.partition("=")[2]}"' in (folder / "shop.yaml").read_text()
    rendered = runner.invoke(
        main,
        [
            "render",
            "--catalog",
            str(folder),
            "--workload",
            "shop",
            "--output",
            str(tmp_path / "ctx"),
            "--pull",
            "never",
        ],
    )
    assert rendered.exit_code == 0, rendered.output
    # An image that is not there, with --pull never: one line, and no entry.
    missing = runner.invoke(
        main,
        [
            "workloads",
            "new",
            "gone",
            "--from",
            f"{image}-gone",
            "--dir",
            str(folder),
            "--pull",
            "never",
        ],
    )
    assert missing.exit_code != 0
    assert len(missing.output.strip().splitlines()) == 1, missing.output
    assert not (folder / "gone.yaml").exists()


def test_image_from_takes_the_default_online_path(
    engine,
    upstream_shaped: list[str],
    applications: dict[str, str],
    certs: Path,
    network: str,
) -> None:
    """`meshexp-build image --from APP` as a user with a registry types it: no --offline,
    no --proxy-file. The mesh's programs come from upstream's images for the default
    release (played by upstream-shaped test equipment, preloaded), the application's
    layers stay the image's first, and it comes up ready with the real proxy that the
    proxy image carried (SPIRE gives it its SVID)."""
    application = applications["scratch"]
    result = CliRunner().invoke(
        main, ["image", "--from", application, "--progress", "plain"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    reference = "meshexp/scratch:linkerd-2.20"  # the default name: workload and line
    try:
        attrs = docker_engine.image_attrs(reference)
        labels = attrs["Config"]["Labels"]
        assert labels[image_contract.APPLICATION_IMAGE] == application
        assert labels["io.meshexp.linkerd-release"] == "edge-26.6.3"
        assert labels["io.meshexp.source.proxy"].startswith(
            "image cr.l5d.io/linkerd/proxy:edge-26.6.3 "
        ), labels["io.meshexp.source.proxy"]
        app_layers = docker_engine.image_attrs(application)["RootFS"]["Layers"]
        assert attrs["RootFS"]["Layers"][: len(app_layers)] == app_layers
        assert image_contract.PROXY_STANDIN not in labels
        assert "proxy v2.359.0 (read from cr.l5d.io/linkerd/proxy:edge-26.6.3)" in result.output
        with containers.mesh_container(
            image=reference, network=network, certs=certs, env={}
        ) as box:
            wait.until(
                lambda: image_contract.WORKLOAD_READY_LINE in box.logs() or wait.NotYet("no"),
                timeout=60,
            )
            assert proxy_readiness(box.ip, timeout=5)[0]
            # The real proxy took its SVID from the SPIRE agent (the stand-in has none).
            assert identity_refreshes(box.ip) >= 1
            assert "PROXY STAND-IN" not in box.logs()
    finally:
        docker_engine.remove_image(reference)
