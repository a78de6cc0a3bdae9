"""The walk-through end to end in the mesh lab: a real Linkerd control plane (built from
source, test equipment), the real proxy, and the real Faces programs in our images.

smiley and color run as external workloads, face as a workload of the mesh
(an ExternalWorkload too, with its own proxy). Everything is asserted from the
proxies' own metrics, the API server's objects and Faces' own answers.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Namespace
from lightkube.resources.discovery_v1 import EndpointSlice

from builder.build.from_image import from_entry
from builder.build.image import build_workload_image
from builder.check.answers import CURSING, GRINNING, face_trouble, smiley_share
from builder.check.listings import metric_series
from builder.check.walkthrough.steps import canary_route
from builder.cluster import kube
from builder.cluster.keeper import StatusKeeper, targets_from_manifests
from builder.cluster.manifests import OPAQUE_PORTS, build_manifests
from builder.config.catalog import find_workload
from builder.config.settings import Settings, load_settings
from builder.core.net import proxy_readiness
from builder.engine import docker_engine
from builder.lab import Lab, lab_status
from builder.lab.check import check_outbound_in_lab
from harness import apps, faces
from harness.lab import into_lab
from harness.registration import Running, all_ready, docker_run, ready
from harness.rotation import FACE_ENV

pytestmark = pytest.mark.mesh
BLUE = "#66CCEE"
SLEEPING = "&#x1F634;"
HEART_EYES = "&#x1F60D;"


@pytest.fixture(scope="module")
def trio(lab: Lab, mesh_settings: Settings) -> dict[str, Any]:
    """smiley, color and face running in the lab, applied and Ready."""
    started = {}
    for name in ("smiley", "color", "face"):
        image = build_workload_image(workload=find_workload(name), settings=mesh_settings)
        env = FACE_ENV if name == "face" else {}
        started[name] = start(lab, mesh_settings, name, name, image.reference, env)
    return started


def start(
    lab: Lab, settings: Settings, workload: str, name: str, image: str, env: dict[str, str]
) -> Any:
    """Run `image` (catalog entry `workload`) into the lab as ExternalWorkload `name`."""
    return into_lab(
        lab, settings, workload, f"{lab.name}-w-{name}", name=name, env=env, image=image
    )


def metrics(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:4191/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def outbound_tls(text: str, target: str) -> list[dict[str, str]]:
    """The outbound tcp_open_total series to `target` (ip:port), as label dicts."""
    return [s for s in outbound_series(text) if s.get("target_addr") == target]


def outbound_series(text: str) -> list[dict[str, str]]:
    """Every outbound tcp_open_total series to a destination, as label dicts."""
    return [
        labels
        for labels, _ in metric_series(text, "tcp_open_total")
        if labels.get("direction") == "outbound" and labels.get("peer") == "dst"
    ]


def ask_face(ip: str, path: str = "/center/") -> dict[str, Any]:
    answer = faces.http_call(ip, "GET", path, {"X-Faces-User": "mesh"})
    assert answer["status"] == 200, answer
    return dict(answer["body"])


def test_lab_up_runs_the_control_plane(lab: Lab) -> None:
    _, states = lab_status(folder=lab.folder)
    assert {s.role: s.status for s in states} == {
        "apiserver": "running",
        "dns": "running",
        "identity": "running",
        "destination": "running",
    }
    for role in ("identity", "destination"):
        state = next(s for s in states if s.role == role)
        assert state.detail.startswith("proxy ready"), state
        logs = docker_engine.container_logs(f"{lab.name}-{role}")
        assert "Certified identity id=linkerd-" in logs
    assert kube.connect(lab.kubeconfig)  # the kubeconfig it printed works


def test_face_gets_smileys_and_colors_over_mtls(trio: dict[str, Any]) -> None:
    body = ask_face(trio["face"].ip)
    assert face_trouble([json.dumps(body)]) == []  # the k3d e2e's check too
    assert (body["smiley"], body["color"]) == (GRINNING, BLUE)  # upstream's own answers
    seen = metrics(trio["face"].ip)
    for backend in ("smiley", "color"):
        [series] = outbound_tls(seen, f"{trio[backend].ip}:8000")
        identity = Settings().identity_of("faces", backend).spiffe_id
        assert series["tls"] == "true", series
        assert series["server_id"] == identity
        assert series["dst_external_workload"] == backend


def test_the_default_online_image_joins_the_mesh(
    lab: Lab, trio: dict[str, Any], mesh_settings: Settings
) -> None:
    """smiley built by the default path (no --offline, no --proxy-file: upstream's images,
    upstream-shaped test equipment here) is called by face over mTLS through the lab."""
    online = load_settings(None, {}).with_(image_name="meshexp-test-online/{workload}")
    image = build_workload_image(workload=find_workload("smiley"), settings=online)
    assert image.labels["io.meshexp.source.proxy"].startswith(
        "image cr.l5d.io/linkerd/proxy:edge-26.6.3 (local image sha256:"
    )
    smiley = start(lab, online, "smiley", "smiley-online", image.reference, {})
    service = "smiley-online.faces.svc.cluster.local:8000"
    face_image = build_workload_image(workload=find_workload("face"), settings=mesh_settings)
    face = start(
        lab, mesh_settings, "face", "face-online", face_image.reference,
        {**FACE_ENV, "SMILEY_SERVICE": service},
    )  # fmt: skip
    body = ask_face(face.ip)
    assert body["smiley"] == GRINNING, body
    [series] = outbound_tls(metrics(face.ip), f"{smiley.ip}:8000")
    assert series["tls"] == "true", series
    assert series["server_id"] == online.identity_of("faces", "smiley-online").spiffe_id


def test_destination_made_endpoint_slices_of_the_external_workloads(
    lab: Lab, trio: dict[str, Any]
) -> None:
    client = kube.connect(lab.kubeconfig)
    slices = list(
        client.list(
            EndpointSlice, namespace="faces", labels={"kubernetes.io/service-name": "smiley"}
        )
    )
    targets = [
        (endpoint.targetRef.kind, endpoint.targetRef.name, endpoint.addresses)
        for piece in slices
        for endpoint in piece.endpoints or []
        if endpoint.targetRef is not None
    ]
    assert ("ExternalWorkload", "smiley", [trio["smiley"].ip]) in targets


def test_our_programs_and_upstreams_mix_through_every_proxy(
    lab: Lab, trio: dict[str, Any], build, offline_settings: Settings
) -> None:
    """Cross-wiring in the mesh: our face (go/) calls upstream's smiley and color, and
    upstream's face calls our smiley and color, every hop through two proxies, mTLS.
    """
    started = []

    def run(name: str, as_name: str, env: dict[str, str], image: str) -> Any:
        result = start(lab, offline_settings, name, as_name, image, env)
        started.append(result.name)
        return result

    try:
        ours = {name: build(name).reference for name in ("smiley", "color", "face")}
        run("smiley", "smiley-ours", {}, ours["smiley"])
        run("color", "color-ours", {}, ours["color"])
        services = "{}.faces.svc.cluster.local:8000"
        our_face = run("face", "face-ours", FACE_ENV, ours["face"])
        their_face = run(
            "face",
            "face-upstream",
            {
                "SMILEY_SERVICE": services.format("smiley-ours"),
                "COLOR_SERVICE": services.format("color-ours"),
            },
            trio["face"].image,
        )
        for face in (our_face, their_face):
            body = ask_face(face.ip)
            assert "errors" not in body, body["errors"]
            assert (body["smiley"], body["color"]) == (GRINNING, BLUE)
        seen = metrics(their_face.ip)
        assert any(
            s["tls"] == "true" and s["dst_external_workload"] == "smiley-ours"
            for s in outbound_series(seen)
        )
    finally:
        for name in started:
            docker_engine.remove_container(name)


def test_a_direct_connection_to_a_workload_ip_gets_mtls(trio: dict[str, Any]) -> None:
    """The profile networks: a call to smiley's address, not its Service's name."""
    target = f"{trio['smiley'].ip}:8000"
    uid = "2200"
    code, out = docker_engine.exec_in(
        trio["face"].name,
        [
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/{trio['smiley'].ip}/8000 && "
            'printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && timeout 10 cat <&3',
        ],
        user=uid,
    )
    assert code == 0, out[:300]
    assert out.startswith("HTTP/1.0 200"), out[:300]
    direct = [s for s in outbound_tls(metrics(trio["face"].ip), target) if "authority" not in s]
    assert direct, "no outbound series for the direct connection"
    assert all(series["tls"] == "true" for series in direct), direct


def walkthrough_policy(selector: dict[str, str], identities: list[str]) -> list[dict[str, Any]]:
    """The walk-through's external-server.yaml and external-auth.yaml, in their shape
    (service-mesh-academy 2-15-mesh-expansion/k8s): a Server over external workloads
    that denies by default, and an AuthorizationPolicy whose MeshTLSAuthentication
    lists the clients by SPIFFE ID. Its Server selects `location: vm`, a label of its
    own template that our ExternalWorkloads do not carry: `selector` stands in for it.
    Each carries our managed-by label only so that the test's cleanup deletes it.
    """
    managed = {"app.kubernetes.io/managed-by": "meshexp-build"}
    server = {
        # The walk-through writes v1beta2; the API server serves it as this, the CRD's
        # stored version, which builder.cluster.kube speaks.
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "Server",
        "metadata": {
            "name": "external-workloads",
            "namespace": "faces",
            "labels": managed,
            "annotations": {"config.linkerd.io/default-inbound-policy": "deny"},
        },
        "spec": {
            "externalWorkloadSelector": {"matchLabels": selector},
            "port": "http",
            "proxyProtocol": "HTTP/1",
        },
    }
    authentication = {
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "MeshTLSAuthentication",
        "metadata": {"name": "external-workload-mtls", "namespace": "faces", "labels": managed},
        "spec": {"identities": identities},
    }
    policy = {
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "external-authn", "namespace": "faces", "labels": managed},
        "spec": {
            "requiredAuthenticationRefs": [
                {
                    "group": "policy.linkerd.io",
                    "kind": "MeshTLSAuthentication",
                    "name": "external-workload-mtls",
                }
            ],
            "targetRef": {
                "group": "policy.linkerd.io",
                "kind": "Server",
                "name": "external-workloads",
            },
        },
    }
    return [server, policy, authentication]


def inbound_client_ids(ip: str) -> set[str]:
    """The client identities a proxy's inbound metrics name (its `client_id` labels)."""
    return {
        labels["client_id"]
        for name in ("tcp_open_total", "request_total")
        for labels, _ in metric_series(metrics(ip), name)
        if labels.get("direction") == "inbound" and labels.get("client_id")
    }


def test_policy_names_an_external_client_by_its_spiffe_id(
    lab: Lab, trio: dict[str, Any], mesh_settings: Settings
) -> None:
    """The walk-through's policy objects, naming face by its SPIFFE ID: face is admitted,
    a face of another identity is refused with 403, a plaintext client too; smiley's
    proxy names face by its SPIFFE ID."""
    client = kube.connect(lab.kubeconfig)
    face_id = mesh_settings.identity_of("faces", "face").spiffe_id
    generated = build_manifests(
        workload=find_workload("face"), settings=mesh_settings, ips=["10.0.0.1"],
        authentication=True,
    ).authentication  # fmt: skip
    assert generated is not None
    assert generated["spec"]["identities"] == [face_id]  # `manifests --authentication` agrees
    applied = kube.apply_documents(client, walkthrough_policy({"app": "smiley"}, [face_id]))
    other = start(
        lab,
        mesh_settings,
        "face",
        "face-shop",
        trio["face"].image,
        {"WORKLOAD_NAMESPACE": "shop", "WORKLOAD_NAME": "face", **FACE_ENV},
    )
    try:
        refused = faces.wait_for(lambda: "errors" in ask_face(other.ip, "/"), timeout=30)
        assert refused, "the policy did not reach smiley's proxy in 30s"
        body = ask_face(other.ip, "/")
        assert body["smiley"] == CURSING
        assert any("403" in error for error in body["errors"]), body["errors"]
        admitted = ask_face(trio["face"].ip, "/")
        assert "errors" not in admitted, admitted
        assert admitted["smiley"] == GRINNING
        plain = faces.http_call(trio["smiley"].ip, "GET", "/", {}, expect_json=False)
        assert plain["status"] == 403
        seen = inbound_client_ids(trio["smiley"].ip)
        assert face_id in seen, seen
        assert not [name for name in seen if not name.startswith("spiffe://")], seen
    finally:
        kube.delete_managed(client, applied)
        docker_engine.remove_container(other.name)


def test_a_canary_route_splits_between_two_external_smileys(
    lab: Lab, trio: dict[str, Any], mesh_settings: Settings
) -> None:
    """Linkerd's HTTPRoute (policy.linkerd.io, from Linkerd's own CRDs) on smiley's
    Service sends half of face's smiley calls to smiley2, another external workload.
    """
    canary = start(
        lab, mesh_settings, "smiley", "smiley2", trio["smiley"].image, {"SMILEY": "HeartEyes"}
    )
    route = canary_route(50, port=8000)  # the k3d e2e's route, on our workloads' port
    client = kube.connect(lab.kubeconfig)
    applied = kube.apply_documents(client, [route])
    try:
        assert faces.wait_for(
            lambda: ask_face(trio["face"].ip, "/")["smiley"] == HEART_EYES, timeout=30
        ), "face's proxy never routed to smiley2"
        answers = [json.dumps(ask_face(trio["face"].ip, "/")) for _ in range(40)]
        # The k3d e2e's own checks of face's answers (builder.check.walkthrough.run), shared.
        assert face_trouble(answers) == []
        share = smiley_share(answers, HEART_EYES)
        # 40 draws at 50/50: outside 20-80 % has odds below 1 in 10,000.
        assert 0.2 <= share <= 0.8, f"smiley2 got {share:.0%} of the answers"
        assert smiley_share(answers, GRINNING) == pytest.approx(1 - share)  # nothing else
    finally:
        kube.delete_managed(client, applied)
        docker_engine.remove_container(canary.name)


@pytest.mark.parametrize("name", ["smiley", "color"])
def test_check_in_the_lab_completes_outbound_over_mtls(
    lab: Lab, trio: dict[str, Any], name: str
) -> None:
    """`check --lab`: HTTP (smiley) and gRPC (color) calls to a second instance."""
    detail = check_outbound_in_lab(image=trio[name].image, lab=lab)
    identity = Settings().identity_of("faces", f"{name}-check-peer").spiffe_id
    assert f"over mTLS to {identity} through the control plane" in detail
    expected = "grpc-status 0" if name == "color" else "'HTTP/1.0 200 OK'"
    assert expected in detail
    client = kube.connect(lab.kubeconfig)
    assert kube.ready_condition(f"{name}-check", "faces", client) is None  # cleaned up


def test_an_application_image_answers_over_mtls_and_registers_in_the_lab(
    engine, lab: Lab, mesh_settings: Settings, real_faces: dict[str, Path], tmp_path: Path
) -> None:
    """`image --from` an application FROM scratch (the static smiley: no shell, no libc),
    then `check --lab`: the image runs twice as ExternalWorkloads with no catalog entry;
    one's workload UID reaches the other, and its proxy reports mTLS to that identity.
    Then the walk-through's `docker run` and the registrar: it is registered from its
    labels alone (its EXPOSEd port opaque), comes Ready, and is deregistered once gone."""
    name = "scratch-app"
    with apps.applications(real_faces["smiley"], tmp_path, "lab", ("scratch",)) as made:
        built = build_workload_image(
            workload=from_entry(made["scratch"], name), settings=mesh_settings
        )
        try:
            detail = check_outbound_in_lab(image=built.reference, lab=lab)
            identity = mesh_settings.identity_of("default", f"{name}-check-peer").spiffe_id
            assert f"over mTLS to {identity} through the control plane" in detail
            client = kube.connect(lab.kubeconfig)
            docker_run(engine, lab, name, built.reference, {"WORKLOAD_NAME": name})
            running = Running(lab, "from-image-test")
            try:
                assert faces.wait_for(lambda: all_ready(client, [name]), timeout=120), (
                    ready(client, name),
                    running.lines[-10:],
                )
                held = kube.get_object(client, kube.ObjectRef("ExternalWorkload", name, "faces"))
                assert held is not None
                ip = docker_engine.container_ip(name, lab.network)
                assert held["spec"]["workloadIPs"] == [{"ip": ip}]
                assert held["metadata"]["annotations"][OPAQUE_PORTS] == "8000"
                assert [p["port"] for p in held["spec"]["ports"]] == [8000]
                docker_engine.remove_container(name)
                assert faces.wait_for(
                    lambda: (
                        kube.get_object(client, kube.ObjectRef("ExternalWorkload", name, "faces"))
                        is None
                    ),
                    timeout=60,
                ), running.lines[-10:]
            finally:
                running.end()
        finally:
            docker_engine.remove_container(name)
            docker_engine.remove_image(built.reference)


READY_AGAIN = 60.0  # seconds: a restarted part is ready again within this
TRAFFIC_GAP = 0.2  # seconds between face's calls while a part restarts


def part_ready(lab: Lab, role: str) -> bool:
    """The part is up and doing its job again: the pods' proxies ready, the API server
    answering a read, the DNS server running."""
    state = docker_engine.container_state(f"{lab.name}-{role}")
    if not state.get("Running") or state.get("Restarting"):
        return False
    if role in lab.addresses.pods:
        return proxy_readiness(lab.addresses.pods[role], timeout=2)[0]
    if role == "apiserver":
        try:
            kube.connect(lab.kubeconfig).get(Namespace, "linkerd")
        except Exception:
            return False
    return True


def process_of(container: str, program: str) -> int:
    """The host PID of the container's process running `program`."""
    top = docker_engine.client().containers.get(container).top(ps_args="-eo pid,args")
    found = [int(row[0]) for row in top["Processes"] if row[1].split()[0] == program]
    assert len(found) == 1, (program, top["Processes"])
    return found[0]


def traffic_while(face_ip: str, until: threading.Event) -> list[str]:
    """face's calls (smiley and color behind it) until `until` is set; each problem."""
    problems: list[str] = []
    deadline = time.monotonic() + 4 * READY_AGAIN  # bounded, whatever happens
    while not until.is_set() and time.monotonic() < deadline:
        try:
            answer = faces.http_call(face_ip, "GET", "/center/", {"X-Faces-User": "mesh"})
            body = json.dumps(answer["body"])
            if answer["status"] != 200 or face_trouble([body]):
                problems.append(f"{answer['status']}: {body[:200]}")
        except OSError as exc:
            problems.append(str(exc))
        time.sleep(TRAFFIC_GAP)  # the pace of the calls, not a wait for anything
    return problems


@pytest.mark.parametrize(
    ("role", "how"),
    [
        ("destination", "restart"),
        ("identity", "restart"),
        ("apiserver", "restart"),
        ("dns", "restart"),
        ("destination", "kill"),
        ("destination", "kill policy"),
    ],
)
def test_a_part_restarted_or_killed_comes_back_while_traffic_flows(
    lab: Lab, trio: dict[str, Any], role: str, how: str
) -> None:
    """As a kubelet would: the part is started again by itself and is ready again, and
    the workloads' proxies, living on what they hold, keep answering meanwhile."""
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        calls = pool.submit(traffic_while, trio["face"].ip, stop)
        time.sleep(1)  # traffic flowing before the part goes: what it must not interrupt
        container = f"{lab.name}-{role}"
        restarts = docker_engine.inspect_if_exists(container)["RestartCount"]
        began = time.monotonic()
        if how == "restart":
            docker_engine.restart_container(container)
        else:  # the part's own process dies (not a `docker stop`): the engine restarts it
            pid = (
                process_of(container, "/lab/bin/policy-controller")
                if how == "kill policy"  # one controller of the pod dies: the pod restarts
                else int(docker_engine.container_state(container)["Pid"])
            )
            assert pid > 0, f"{container} is not running"  # kill(0) would be our own group
            os.kill(pid, signal.SIGKILL)
            while docker_engine.inspect_if_exists(container)["RestartCount"] == restarts:
                assert time.monotonic() - began < READY_AGAIN, f"{container} was not restarted"
                time.sleep(0.2)
        while not part_ready(lab, role):
            assert time.monotonic() - began < READY_AGAIN, f"{container} not ready again"
            time.sleep(0.5)
        ready_after = time.monotonic() - began
        time.sleep(2)  # traffic after the part is back, through what it serves again
        stop.set()
        problems = calls.result(timeout=60)
    assert problems == [], problems[:5]
    assert ready_after < READY_AGAIN
    _, states = lab_status(folder=lab.folder)
    assert {s.role: s.status for s in states}[role] == "running"


def test_killing_smiley_shows_in_face_and_in_its_ready_status(
    lab: Lab, trio: dict[str, Any]
) -> None:
    smiley = trio["smiley"]
    keeper = StatusKeeper(
        lab.kubeconfig, targets_from_manifests(lab.folder / "manifests", (smiley.name,))
    )
    keeper.step()
    assert kube.ready_condition("smiley", "faces", kube.connect(lab.kubeconfig))["status"] == "True"
    docker_engine.remove_container(smiley.name)
    keeper.step()
    condition = kube.ready_condition("smiley", "faces", kube.connect(lab.kubeconfig))
    assert (condition["status"], condition["reason"]) == ("False", "ContainerStopped")
    body = ask_face(trio["face"].ip, "/")
    # face's own fallback: Sleeping when face's proxy answers 504 (it gave up on the
    # dead endpoint), Cursing for any other failure; never the smiley itself.
    [error] = body["errors"]
    fallback = (
        SLEEPING if "error from smiley.faces.svc.cluster.local:8000: 504" in error else CURSING
    )
    assert body["smiley"] == fallback, error
    assert error.startswith("smiley: ")
    assert body["color"] == BLUE  # color still answers
