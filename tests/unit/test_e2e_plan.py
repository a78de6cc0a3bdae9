"""Everything e2e is made of that can be tested without a cluster."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from pathlib import Path

import pytest

from builder.check import answers
from builder.check.walkthrough import observe, run, walk
from builder.check.walkthrough import steps as e2e_steps
from builder.cluster.providers import KindProvider
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


def test_kind_online_needs_no_k3d_and_points_to_the_offline_path() -> None:
    """kind is built here, so it is not a tool to install; without registry access the
    answer names the offline walk-through and what it needs."""
    missing = e2e_steps.missing_prerequisites(
        proxy_is_standin=False,
        provider="kind",
        which=lambda tool: None if tool in ("k3d", "helm") else "/bin/" + tool,
        resolves=lambda host: host != "ghcr.io",
    )
    assert [item.split(":", 1)[0] for item in missing] == ["helm not on PATH", "registry access"]
    assert "ghcr.io do not resolve here (kindest/node," in missing[1]
    assert "--linkerd-programs DIR --faces-programs DIR --proxy-file FILE" in missing[1]
    k3d = e2e_steps.missing_prerequisites(
        proxy_is_standin=False, which=lambda tool: None, resolves=lambda host: True
    )
    assert "k3d not on PATH" in k3d[0]
    assert all("--linkerd-programs" not in item for item in k3d)


def test_cluster_and_linkerd_command_lines() -> None:
    config = e2e_steps.E2EConfig(
        cluster="c1",
        network="n1",
        certs=Path("/x/certs"),
        linkerd_values=("proxy.image.name=local/proxy",),
    )
    (create, kubeconfig) = e2e_steps.cluster_create(config)
    assert create[:4] == ["k3d", "cluster", "create", "c1"]
    assert create[create.index("--network") + 1] == "n1"
    assert "--disable=traefik@server:0" in create
    assert "--disable=metrics-server@server:0" in create
    assert kubeconfig[-2:] == ["--output", "/x/kubeconfig"]
    crds, control_plane = e2e_steps.linkerd_install(config)
    assert crds[4:] == ["--crds", "--set", "installGatewayAPI=true"]
    flags = dict(zip(control_plane[4::2], control_plane[5::2], strict=False))
    assert flags["--identity-trust-anchors-file"] == "/x/certs/ca.crt"
    assert flags["--identity-issuer-certificate-file"] == "/x/certs/issuer.crt"
    assert flags["--identity-issuer-key-file"] == "/x/certs/issuer.key"
    assert flags["--set"] == "proxy.image.name=local/proxy"


def test_the_same_walk_through_runs_on_kind_with_its_own_tools(tmp_path: Path) -> None:
    kind = KindProvider(kind=Path("/c/kind"), node_image="node:1", config=tmp_path / "kind.yaml")
    config = e2e_steps.E2EConfig(
        cluster="c1",
        network="n1",
        certs=tmp_path / "certs",
        provider=kind,
        tools=e2e_steps.E2ETools(kubectl="/c/kubectl", helm="/c/helm", linkerd="/c/linkerd"),
        chart="/c/faces-chart-2.0.0.tgz",
    )
    (create,) = e2e_steps.cluster_create(config)
    assert create[1] == "KIND_EXPERIMENTAL_DOCKER_NETWORK=n1"
    assert e2e_steps.kubectl(config, "get", "nodes")[:3] == [
        "/c/kubectl",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
    ]
    assert all(step[0] == "/c/linkerd" for step in e2e_steps.linkerd_install(config))
    helm = next(step for step in e2e_steps.faces_install(config) if step[0] == "/c/helm")
    # a chart file takes no --version (the OCI chart does)
    assert "/c/faces-chart-2.0.0.tgz" in helm
    assert "--version" not in helm


def test_faces_install_disables_errors_then_removes_smiley_and_color() -> None:
    steps = e2e_steps.faces_install(e2e_steps.E2EConfig())
    helm = next(step for step in steps if step[0] == "helm")
    assert "face.errorFraction=0" in helm
    assert "backend.errorFraction=0" in helm
    assert "gui.serviceType=NodePort" in helm
    assert helm[helm.index("--version") + 1] == "2.0.0"
    assert steps[1][-1] == "linkerd.io/inject=enabled"
    assert steps[-1][-3:] == ["deployment", "smiley", "color"]


CHECK_REPORT = {
    "categories": [
        {
            "categoryName": "linkerd-version",
            "checks": [
                {
                    "description": "can determine the latest version",
                    "result": "error",
                    "error": "Get https://versioncheck.linkerd.io: no such host",
                },
                {"description": "cli is up-to-date", "result": "error", "error": "unknown"},
            ],
        },
        {
            "categoryName": "linkerd-control-plane-proxy",
            "checks": [
                {
                    "description": "control plane proxies are up-to-date",
                    "result": "error",
                    "error": "unknown",
                },
                {"description": "control plane proxies are healthy", "result": "success"},
            ],
        },
        {
            "categoryName": "linkerd-identity",
            "checks": [{"description": "issuer cert is valid", "result": "success"}],
        },
    ]
}


def test_linkerd_check_excepts_only_the_version_checks_and_only_offline() -> None:
    report = json.dumps(CHECK_REPORT)
    assert e2e_steps.check_failures(report, offline=True) == []
    assert e2e_steps.excepted_checks(report, offline=True) == [
        "linkerd-version: can determine the latest version",
        "linkerd-version: cli is up-to-date",
        "linkerd-control-plane-proxy: control plane proxies are up-to-date",
    ]
    assert e2e_steps.excepted_checks(report, offline=False) == []
    assert len(e2e_steps.check_failures(report, offline=False)) == 3
    broken = json.loads(report)
    broken["categories"][2]["checks"][0].update(result="error", error="expired")
    [failure] = e2e_steps.check_failures(json.dumps(broken), offline=True)
    assert failure == "linkerd-identity: issuer cert is valid: expired"


def test_the_second_backends_are_heart_eyes_and_green_behind_their_services() -> None:
    documents = e2e_steps.second_backends("2.0.0")
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    assert set(deployments) == set(services) == {"smiley2", "color2"}
    smiley2 = deployments["smiley2"]["spec"]["template"]["spec"]["containers"][0]
    assert smiley2["image"] == "ghcr.io/buoyantio/faces-smiley:2.0.0"
    assert smiley2["env"] == [{"name": "SMILEY", "value": "HeartEyes"}]
    color2 = deployments["color2"]["spec"]["template"]["spec"]["containers"][0]
    assert color2["env"] == [{"name": "COLOR", "value": "green"}]
    assert services["color2"]["spec"]["ports"][0]["name"] == "grpc"


def test_face_is_asked_through_the_gui_as_its_page_asks() -> None:
    """The script, run by bash against a server that answers as the GUI does."""
    asked: list[str] = []

    class GUI(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"smiley": "&#x1F603;", "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GUI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = e2e_steps.gui_requests_script("127.0.0.1", server.server_address[1], 3)
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
    center, edge = "/face/center/?row=1&col=1", "/face/edge/?row=0&col=3"
    assert asked == [center, edge, center]
    bodies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [body["path"] for body in bodies] == asked


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


def test_cleanup_runs_in_reverse_and_survives_failures() -> None:
    done: list[str] = []
    cleanup = walk.Cleanup()
    cleanup.push("cluster", lambda: done.append("cluster"))

    def broken() -> None:
        raise CheckError("boom")

    cleanup.push("forwarder", broken)
    cleanup.push("smiley", lambda: done.append("smiley"))
    errors = cleanup.run()
    assert done == ["smiley", "cluster"]
    assert errors == ["forwarder: boom"]


def test_an_error_is_one_line_with_the_tools_last_word() -> None:
    said = CheckError("`kind load docker-image ...` failed (1):\nloading...\nERROR: no nodes")
    assert walk.one_line(said) == "`kind load docker-image ...` failed (1): ... ERROR: no nodes"
    assert walk.one_line(CheckError("x" * 900), 100) == "x" * 97 + "..."
    assert walk.one_line(OSError()) == "OSError"


class Engine:
    """What the cleanup asks the engine, answered from sets (containers, networks)."""

    def __init__(self, containers: set[str], networks: set[str]) -> None:
        self.containers, self.networks = containers, networks

    def inspect(self, name: str) -> dict[str, str]:
        return {"Id": name} if name in self.containers else {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        engine = walk.docker_engine
        monkeypatch.setattr(
            engine,
            "inspect_if_exists",
            lambda name: {"Id": name} if name in self.containers else {},
        )
        monkeypatch.setattr(engine, "network_exists", lambda name: name in self.networks)
        monkeypatch.setattr(engine, "remove_network", self.networks.discard)
        monkeypatch.setattr(walk, "GONE_WITHIN_S", 0.0)


def recording_runner(fail_on: str, seen: list[list[str]], error: Exception | None = None):
    def runner(command, stdin=None):
        seen.append(list(command))
        if fail_on in command:
            raise error or e2e_steps.CommandFailed(
                f"`{' '.join(command[:3])} ...` failed (1):\nstarting\nERROR: node is gone"
            )
        if command[:2] == ["k3d", "kubeconfig"]:
            return "apiVersion: v1\n"
        return "ok"

    return runner


def test_a_failed_step_is_one_line_and_what_it_made_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node never gets Ready: one line names the step and the tool's last word, the
    cluster is deleted and its network removed, and nothing is said to be left."""
    engine = Engine(set(), {"meshexp-e2e"})
    engine.install(monkeypatch)
    seen: list[list[str]] = []
    config = e2e_steps.E2EConfig(certs=tmp_path / "certs")
    with pytest.raises(walk.StepFailed) as failed:
        run.run_e2e(config=config, settings=None, run=recording_runner("wait", seen))  # type: ignore[arg-type]
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"e2e stopped at step 1/{len(run.STEPS)} (create the cluster): ")
    assert message.endswith("ERROR: node is gone")
    assert seen[-1] == ["k3d", "cluster", "delete", "meshexp-e2e"]
    assert engine.networks == set()


def test_each_step_is_told_as_it_starts_and_ends(tmp_path: Path) -> None:
    """A user watching `check --e2e` sees which step runs (a phase each), and a failed
    step's phase never says done."""
    from builder.core.progress import Progress

    lines: list[str] = []
    done: list[str] = []

    def fails(_: walk.Walk) -> None:
        raise CheckError("e2e: no answer")

    steps = (("first", lambda w: done.append("first")), ("second", fails))
    config = e2e_steps.E2EConfig(certs=tmp_path / "certs")
    with pytest.raises(walk.StepFailed, match=r"step 2/2 \(second\): e2e: no answer"):
        run.run_e2e(config=config, settings=None, steps=steps, progress=Progress(lines.append))  # type: ignore[arg-type]
    assert done == ["first"]
    assert lines[0] == "e2e step 1/2: first ..."
    assert lines[1].startswith("e2e step 1/2: first: done in ")
    assert lines[2:] == ["e2e step 2/2: second ..."]


def test_what_is_still_there_after_cleanup_is_named_in_the_same_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine refuses mid-run (an engine error, not ours), and the node container
    outlives `k3d cluster delete`: the line says so, after the step's cause."""
    import docker.errors

    engine = Engine({"k3d-meshexp-e2e-server-0"}, {"meshexp-e2e"})
    engine.install(monkeypatch)
    seen: list[list[str]] = []
    refused = docker.errors.APIError("500 Server Error: engine refused")
    config = e2e_steps.E2EConfig(certs=tmp_path / "certs")
    with pytest.raises(walk.StepFailed) as failed:
        run.run_e2e(config=config, settings=None, run=recording_runner("wait", seen, refused))  # type: ignore[arg-type]
    message = str(failed.value)
    assert "\n" not in message
    assert "(create the cluster): 500 Server Error: engine refused" in message
    assert message.endswith("cleanup left behind container k3d-meshexp-e2e-server-0")


def test_an_interrupt_still_cleans_up_and_is_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(set(), {"meshexp-e2e"})
    engine.install(monkeypatch)
    seen: list[list[str]] = []
    config = e2e_steps.E2EConfig(certs=tmp_path / "certs")
    runner = recording_runner("wait", seen, KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        run.run_e2e(config=config, settings=None, run=runner)  # type: ignore[arg-type]
    assert seen[-1] == ["k3d", "cluster", "delete", "meshexp-e2e"]
    assert engine.networks == set()


def test_with_keep_a_failed_run_leaves_the_cluster_for_debugging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(set(), {"meshexp-e2e"})
    engine.install(monkeypatch)
    seen: list[list[str]] = []
    config = e2e_steps.E2EConfig(certs=tmp_path / "certs", keep=True)
    with pytest.raises(walk.StepFailed):
        run.run_e2e(config=config, settings=None, run=recording_runner("wait", seen))  # type: ignore[arg-type]
    assert ["k3d", "cluster", "delete", "meshexp-e2e"] not in seen
    assert engine.networks == {"meshexp-e2e"}


def test_metrics_and_split_helpers() -> None:
    metrics = (
        'tcp_open_total{direction="inbound",tls="true",'
        'client_id="face.faces.serviceaccount.identity.linkerd.cluster.local"} 3\n'
        'tcp_open_total{direction="inbound",tls="no_identity"} 9\n'
    )
    assert (
        observe.tls_inbound_from(
            metrics, "face.faces.serviceaccount.identity.linkerd.cluster.local"
        )
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


SPIFFE = "spiffe://root.linkerd.cluster.local"
FACE_ID = "default.faces.serviceaccount.identity.linkerd.cluster.local"
OUT = 'tcp_open_total{direction="outbound",peer="dst",'
FACE_OUTBOUND = f"""\
# TYPE tcp_open_total counter
{OUT}tls="true",server_id="{SPIFFE}/smiley",dst_external_workload="smiley"}} 4
{OUT}tls="true",server_id="{SPIFFE}/color",dst_external_workload="color"}} 2
{OUT}tls="no_identity",dst_external_workload="smiley"}} 1
tcp_open_total{{direction="inbound",peer="src",tls="true",client_id="{FACE_ID}"}} 3
"""


def test_face_metrics_name_the_external_workloads_spiffe_identities() -> None:
    assert observe.tls_outbound_to_external(FACE_OUTBOUND, "smiley") == [f"{SPIFFE}/smiley"]
    assert observe.tls_outbound_to_external(FACE_OUTBOUND, "face") == []
    assert observe.tls_inbound_from(FACE_OUTBOUND, FACE_ID) == 3


def test_endpoint_slices_are_found_by_their_external_workload_target() -> None:
    slices = {
        "items": [
            {
                "metadata": {"name": "linkerd-external-smiley-abc"},
                "endpoints": [{"targetRef": {"kind": "ExternalWorkload", "name": "smiley"}}],
            },
            {
                "metadata": {"name": "face-xyz"},
                "endpoints": [{"targetRef": {"kind": "Pod", "name": "smiley"}}],
            },
            {"metadata": {"name": "empty"}, "endpoints": None},
        ]
    }
    assert observe.external_endpoint_slices(slices, "smiley") == ["linkerd-external-smiley-abc"]
    assert observe.external_endpoint_slices(slices, "color") == []


def test_the_images_pods_ran_are_read_with_what_the_node_pulled() -> None:
    """A Linkerd pod as the API reports it: its init container and both containers, each
    image with its image ID; a container not yet started (no image ID) is left out."""
    pulled = "127.0.0.1:5000/l5d/linkerd/proxy@sha256:" + "a" * 64
    pod = {
        "status": {
            "initContainerStatuses": [
                {"image": "cr.l5d.io/linkerd/proxy:edge-26.8.3", "imageID": pulled}
            ],
            "containerStatuses": [
                {
                    "image": "cr.l5d.io/linkerd/controller:edge-26.8.3",
                    "imageID": "sha256:" + "b" * 64,
                },
                {"image": "cr.l5d.io/linkerd/proxy:edge-26.8.3", "imageID": pulled},
                {"image": "ghcr.io/buoyantio/faces-face:2.0.0", "imageID": ""},
            ],
        }
    }
    assert observe.images_run([pod, {"status": {}}]) == {
        "cr.l5d.io/linkerd/controller:edge-26.8.3": "sha256:" + "b" * 64,
        "cr.l5d.io/linkerd/proxy:edge-26.8.3": pulled,
    }
