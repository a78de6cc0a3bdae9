"""Our Faces images and upstream's programs, wired to each other.

A real face (upstream's binary in a plain container) calls our smiley and
color images through their inbound proxies (the real proxy in CI); our face
image calls real smiley and color containers. Both answers must be healthy:
no `errors`, the backends' own smiley and color. Through face's own proxy the
calls need a control plane (the real proxy holds outbound connections until
a policy controller answers), so here our face image's variant leaves port
8000 out of its outbound capture; inside the mesh lab all hops are meshed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from builder.build.image import build_workload_image
from builder.check.answers import GRINNING
from builder.check.live import tcp_open_total
from builder.cluster.run import run_workload
from builder.config.catalog import find_workload
from harness import faces

BLUE = "#66CCEE"


def run_image(settings, image: str, name: str, network: str, certs: Path, tmp: Path, env=None):
    return run_workload(
        workload=find_workload(name),
        settings=settings,
        certs=certs,
        network=network,
        manifests_dir=tmp / "manifests",
        image=image,
        name=f"{network}-{name}",
        env=env or {},
        timeout=120,
    )


def assert_healthy(answer: dict, smiley: str, color: str) -> None:
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert "errors" not in body, body["errors"]
    assert (body["smiley"], body["color"]) == (smiley, color)


def test_real_face_reaches_our_images_through_their_proxies(
    engine, plain_base, build, real_faces, network, certs, tmp_path: Path, offline_settings
) -> None:
    backends = {
        name: run_image(offline_settings, build(name).reference, name, network, certs, tmp_path)
        for name in ("smiley", "color")
    }
    before = {name: tcp_open_total(run.ip, "inbound") for name, run in backends.items()}
    face = faces.start(
        engine,
        plain_base,
        network,
        real_faces["face"],
        "face",
        {
            "SMILEY_SERVICE": f"{backends['smiley'].ip}:8000",
            "COLOR_SERVICE": f"{backends['color'].ip}:8000",
        },
    )
    try:
        for path in ("/center/?row=1&col=1", "/edge/"):
            answer = faces.http_call(face.ip, "GET", path, {"X-Faces-User": "crosswire"})
            assert_healthy(answer, GRINNING, BLUE)
    finally:
        face.stop()
    for name, run in backends.items():
        # Each call crossed the backend's inbound proxy (gRPC reuses its connection).
        assert tcp_open_total(run.ip, "inbound") > before[name], name


def test_our_face_image_reaches_real_programs(
    engine, plain_base, real_faces, network, certs, tmp_path: Path, offline_settings
) -> None:
    direct = offline_settings.with_(
        outbound_ports_to_ignore=(*offline_settings.outbound_ports_to_ignore, 8000),
        image_name="meshexp-test-direct/{workload}",
    ).check()
    image = build_workload_image(workload=find_workload("face"), settings=direct)
    smiley = faces.start(
        engine, plain_base, network, real_faces["smiley"], "smiley", {"SMILEY": "HeartEyes"}
    )
    color = faces.start(
        engine, plain_base, network, real_faces["color"], "color", {"COLOR": "green"}
    )
    try:
        env = {"SMILEY_SERVICE": f"{smiley.ip}:8000", "COLOR_SERVICE": f"{color.ip}:8000"}
        ours = run_image(direct, image.reference, "face", network, certs, tmp_path, env)
        before = tcp_open_total(ours.ip, "inbound")
        answer = faces.http_call(ours.ip, "GET", "/center/", {})
        assert_healthy(answer, "&#x1F60D;", "#228833")  # HeartEyes, green
        assert tcp_open_total(ours.ip, "inbound") == before + 1  # in through face's proxy
    finally:
        smiley.stop()
        color.stop()


def test_faces_image_runs_the_real_programs_behind_the_walkthroughs_interface(
    real_faces, network, certs, tmp_path: Path, offline_settings
) -> None:
    """The drop-in `faces` image with upstream's v2 binaries (--binary NAME=FILE):
    FACES_SERVICE picks the program, as in the walk-through.
    """
    upstream = offline_settings.with_(
        binaries={"smiley": real_faces["smiley"], "color": real_faces["color"]},
        image_name="meshexp-test-upstream/{workload}",
    ).check()
    image = build_workload_image(workload=find_workload("faces"), settings=upstream)
    for name in ("smiley", "color"):
        digest = hashlib.sha256(real_faces[name].read_bytes()).hexdigest()
        assert image.labels[f"io.meshexp.source.workload.{name}"] == f"file {name} sha256:{digest}"
    smiley = run_image(upstream, image.reference, "faces", network, certs, tmp_path)
    answer = faces.http_call(smiley.ip, "GET", "/", {})
    assert answer["body"]["smiley"] == GRINNING
    color = run_workload(
        workload=find_workload("faces"),
        settings=upstream,
        certs=certs,
        network=network,
        manifests_dir=tmp_path / "manifests",
        image=image.reference,
        name=f"{network}-faces-color",
        env={"FACES_SERVICE": "color"},
        timeout=120,
    )
    called = faces.grpc_call(color.ip, "/ColorService/Center", 1, 1, {})
    assert (called["grpc-status"], called["answers"][0]["color"]) == (0, [BLUE])
