"""Everything e2e is made of that can be tested without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.check import answers, e2e, e2e_steps
from builder.core.errors import CheckError


def test_prerequisites_are_named_with_how_to_get_them() -> None:
    missing = e2e_steps.missing_prerequisites(
        proxy_is_standin=True, which=lambda tool: None, resolves=lambda host: False
    )
    text = "\n".join(missing)
    for tool in ("k3d", "kubectl", "helm", "linkerd"):
        assert f"{tool} not on PATH: install" in text
    assert "cr.l5d.io, ghcr.io, docker.io do not resolve" in text
    assert "the stand-in is refused for e2e" in text
    assert (
        e2e_steps.missing_prerequisites(
            proxy_is_standin=False, which=lambda tool: "/bin/" + tool, resolves=lambda host: True
        )
        == []
    )


def test_cluster_and_linkerd_command_lines() -> None:
    config = e2e_steps.E2EConfig(cluster="c1", network="n1", certs=Path("/x/certs"))
    create = e2e_steps.cluster_create(config)
    assert create[:4] == ["k3d", "cluster", "create", "c1"]
    assert create[create.index("--network") + 1] == "n1"
    assert "--disable=traefik@server:0" in create
    assert "--disable=metrics-server@server:0" in create
    crds, control_plane = e2e_steps.linkerd_install(config)
    assert crds[-1] == "--crds"
    flags = dict(zip(control_plane[4::2], control_plane[5::2], strict=False))
    assert flags["--identity-trust-anchors-file"] == "/x/certs/ca.crt"
    assert flags["--identity-issuer-certificate-file"] == "/x/certs/issuer.crt"
    assert flags["--identity-issuer-key-file"] == "/x/certs/issuer.key"


def test_faces_install_disables_errors_then_removes_smiley_and_color() -> None:
    steps = e2e_steps.faces_install(e2e_steps.E2EConfig())
    helm = next(step for step in steps if step[0] == "helm")
    assert "face.errorFraction=0" in helm
    assert "backend.errorFraction=0" in helm
    assert steps[1][-1] == "linkerd.io/inject=enabled"
    assert steps[-1][-3:] == ["deployment", "smiley", "color"]


def test_dns_forwarder_and_nodeport() -> None:
    assert json.loads(e2e_steps.dns_nodeport(e2e_steps.E2EConfig())[-1]) == {
        "spec": {"type": "NodePort"}
    }
    corefile = e2e_steps.corefile("172.18.0.2", 30053)
    assert "cluster.local:53 {\n    forward . 172.18.0.2:30053" in corefile


def test_canary_route_weights() -> None:
    route = e2e_steps.canary_route(30)
    backends = route["spec"]["rules"][0]["backendRefs"]  # type: ignore[index]
    assert [(b["name"], b["weight"]) for b in backends] == [("smiley", 30), ("smiley2", 70)]


def test_wait_until_polls_then_gives_up() -> None:
    now = [0.0]
    answers = iter([False, False, True])
    taken = e2e.wait_until(
        "x",
        lambda: next(answers),
        60,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert taken == 4.0
    with pytest.raises(CheckError, match="never did not happen within 5s"):
        e2e.wait_until(
            "never",
            lambda: False,
            5,
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
        )


def test_cleanup_runs_in_reverse_and_survives_failures() -> None:
    done: list[str] = []
    cleanup = e2e.Cleanup()
    cleanup.push("cluster", lambda: done.append("cluster"))

    def broken() -> None:
        raise CheckError("boom")

    cleanup.push("forwarder", broken)
    cleanup.push("smiley", lambda: done.append("smiley"))
    errors = cleanup.run()
    assert done == ["smiley", "cluster"]
    assert errors == ["forwarder: boom"]


def test_cluster_setup_stops_and_still_cleans_up(tmp_path: Path) -> None:
    """A step that fails after the cluster exists leaves a cleanup that deletes it."""
    seen: list[list[str]] = []

    def runner(command, stdin=None):
        seen.append(list(command))
        if command[:2] == ["k3d", "kubeconfig"]:
            return "apiVersion: v1\n"
        if "wait" in command:
            raise CheckError("nodes never became ready")
        return ""

    config = e2e_steps.E2EConfig(certs=tmp_path / "certs")
    cleanup = e2e.Cleanup()
    with pytest.raises(CheckError, match="nodes never became ready"):
        e2e.cluster_setup(config, runner, cleanup)
    cleanup.run()
    assert seen[-1] == ["k3d", "cluster", "delete", "meshexp-e2e"]


def test_metrics_and_split_helpers() -> None:
    metrics = (
        'tcp_open_total{direction="inbound",tls="true",'
        'client_id="face.faces.serviceaccount.identity.linkerd.cluster.local"} 3\n'
        'tcp_open_total{direction="inbound",tls="no_identity"} 9\n'
    )
    assert (
        e2e.tls_inbound_from(metrics, "face.faces.serviceaccount.identity.linkerd.cluster.local")
        == 3
    )


UPSTREAM_ANSWERS = (Path(__file__).parent / "data" / "upstream-faces-answers.txt").read_text()


def test_answer_checks_read_real_upstream_answers() -> None:
    """Answers recorded from the upstream v2.0.0 programs (tests/unit/data/README.md)."""
    healthy_face, center_face, broken_face, smiley = UPSTREAM_ANSWERS.splitlines()
    # The smiley is an HTML entity inside JSON, escaped by Go as \u0026.
    assert "\\u0026#x1F603;" in smiley
    assert answers.smiley_share([healthy_face, center_face, smiley], answers.GRINNING) == 1.0
    assert answers.smiley_share([healthy_face, "curl: (28) timeout"], answers.GRINNING) == 0.5
    assert answers.smiley_share([healthy_face], "&#x1F60D;") == 0.0
    assert answers.face_trouble([healthy_face, center_face]) == []
    [problem] = answers.face_trouble([healthy_face, broken_face])
    assert problem.startswith("face reported errors: ")
    assert "color: couldn't get color from 172.23.0.3:9" in problem
    assert answers.face_trouble(["", healthy_face]) == ["1 of 2 answers were not JSON"]
