"""Registration by identity in the mesh lab (issue 35): first the fact it rests on (what
the real inbound proxy tells an application of its caller); then meshexp-registrar, meshed,
with its own service account's token and only the RBAC `registrar install` gives it,
against the lab's real API server; workloads call it through their own real proxies.

The service runs here as an ExternalWorkload of its own (the lab has no nodes for a
pod); in a cluster `registrar install` runs it as a meshed Deployment. The callers are
the walk-through's `docker run` of a Python service (test equipment, harness/apps),
which sends its registration from inside its container, as its workload's user.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube.generic_resource import create_namespaced_resource

from builder.build.from_image import settle
from builder.build.image import build_workload_image
from builder.cluster import kube
from builder.cluster.run import stop_workload
from builder.config.models import Workload
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.types import parse
from builder.core.errors import CatalogError
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.lab import Lab, run_in_lab
from builder.registration import install, service
from harness import apps, faces
from harness.registration import docker_run

pytestmark = pytest.mark.mesh
NAMESPACE = "meshexp"  # the service's
URL = f"http://{install.NAME}.{NAMESPACE}.svc.cluster.local:{install.PORT}"
REGISTRATION = f"{URL}/v1/namespaces/faces/groups/echoes/registration"
PERIOD, FAILURES, GRACE = 2, 2, 12
create_namespaced_resource(
    service.API_GROUP, service.API_VERSION, "RegistrationGroup", service.GROUP_PLURAL
)

# The registration call, made inside a workload's container as its user.
CALL = """
import json, sys, urllib.request, urllib.error
method, url, body, claim = sys.argv[1:5]
headers = {"Content-Type": "application/json"}
if claim:
    headers["l5d-client-id"] = claim
request = urllib.request.Request(url, data=body.encode() or None, headers=headers, method=method)
try:
    answer = urllib.request.urlopen(request, timeout=20)
    print(answer.status, answer.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""


def call(
    container: str,
    method: str,
    body: dict[str, Any] | None,
    claim: str = "",
    url: str = REGISTRATION,
) -> tuple[int, dict[str, Any]]:
    """`method` on the registration, from inside `container` as its workload's user."""
    text = json.dumps(body) if body is not None else ""
    code, output = docker_engine.exec_in(
        container, ["python3", "-c", CALL, method, url, text, claim], user="1000"
    )
    assert code == 0, output
    status, _, answer = output.strip().splitlines()[-1].partition(" ")
    return int(status), json.loads(answer)


def service_account_folder(lab: Lab, client: Any, folder: Path) -> tuple[Path, str]:
    """The service account's token and the API server's CA, as a projected volume holds
    them (readable by the service's user only); the server's URL."""
    config = yaml.safe_load(lab.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    token = kube.service_account_token(client, install.NAME, NAMESPACE, seconds=3600)
    folder.mkdir(mode=0o700)
    for name, data in (
        ("token", token.encode()),
        ("ca.crt", base64.b64decode(cluster["certificate-authority-data"])),
    ):
        descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.chown(folder / name, install.UID, install.UID)
    os.chown(folder, install.UID, install.UID)
    return folder, cluster["server"]


def group_document(lab: Lab) -> dict[str, Any]:
    spec = {
        "workload": "echo",
        "names": ["echo-*"],
        "networks": [lab.addresses.subnet],
        "ports": [{"name": "http", "port": 8080}],
        "probe": {"path": "/ready", "port": 8080},
        "heartbeat": {"periodSeconds": PERIOD, "failureThreshold": FAILURES, "graceSeconds": GRACE},
    }
    return install.group_document("echoes", "faces", spec)


def workload_from(image: str, name: str, namespace: str) -> Workload:
    document = {
        "name": name,
        "namespace": namespace,
        "from": {"image": image},
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "app_protocol": "http"}],
    }
    return parse(Workload, document, "test:", CatalogError, {"where": "test:"})


@pytest.fixture(scope="module")
def registrar(
    engine,
    lab: Lab,
    mesh_settings: Settings,
    real_faces: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """The service, meshed, in the lab; two echo applications' images to call it from."""
    client = kube.connect(lab.kubeconfig)
    crd = install.crd_document()
    kube.apply_crds(client, yaml.safe_dump(crd))
    for namespace in (NAMESPACE, "faces"):
        kube.ensure_namespace(client, namespace)
    kube.apply_documents(client, install.rbac_documents(NAMESPACE, ["faces"]))
    kube.apply_documents(client, [group_document(lab)])
    scratch = tmp_path_factory.mktemp("registrar")
    account, server = service_account_folder(lab, client, scratch / "account")
    parsed = urllib.parse.urlsplit(server)
    made_service = install.build_service_image("meshexp-test/registrar-app:lab", OFFLINE_BASE_IMAGE)
    workload = settle(
        workload_from(made_service, install.NAME, NAMESPACE), mesh_settings, Progress()
    )
    meshed = build_workload_image(workload=workload, settings=mesh_settings).reference
    manifests = Path(tempfile.mkdtemp(dir=scratch))
    with apps.applications(real_faces["smiley"], scratch, "reg", ("python",)) as made:
        echo = settle(workload_from(made["python"], "echo", "faces"), mesh_settings, Progress())
        echo_image = build_workload_image(workload=echo, settings=mesh_settings).reference
        try:
            run_in_lab(
                lab=lab,
                workload=workload,
                settings=mesh_settings,
                manifests_dir=manifests,
                image=meshed,
                name=install.NAME,
                env={
                    "WORKLOAD_NAME": install.NAME,
                    "WORKLOAD_NAMESPACE": NAMESPACE,
                    "KUBERNETES_SERVICE_HOST": str(parsed.hostname),
                    "KUBERNETES_SERVICE_PORT": str(parsed.port),
                },
                mounts={str(account): "/var/run/secrets/kubernetes.io/serviceaccount"},
            )
            yield {
                "client": client,
                "echo": echo_image,
                "echo_workload": echo,
                "plain": made["python"],
            }
        finally:
            for name in ("echo-1", "echo-2", "echo-3", "intruder", "plain-caller"):
                docker_engine.remove_container(name)
            stop_workload(name=install.NAME, manifests_dir=manifests, kubeconfig=lab.kubeconfig)
            for image in (meshed, echo_image, made_service):
                docker_engine.remove_image(image)


def held(client: Any, name: str) -> dict[str, Any] | None:
    return kube.get_object(client, kube.ObjectRef("ExternalWorkload", name, "faces"))


def started(engine: Any, lab: Lab, name: str, image: str) -> str:
    """The walk-through's `docker run` of the echo image as `name`; its address."""
    docker_run(engine, lab, name, image, {"WORKLOAD_NAME": name})
    assert faces.wait_for(
        lambda: "workload ready" in docker_engine.container_logs(name), timeout=60
    ), docker_engine.container_logs(name)[-2000:]
    return docker_engine.container_ip(name, lab.network)


def headers_seen(container: str, url: str) -> list[list[str]]:
    """The headers the echo application at `url` received from `container`'s call."""
    code, output = docker_engine.exec_in(
        container, ["python3", "-c", CALL, "GET", url, "", CLAIM], user="1000"
    )
    assert code == 0, output
    status, _, answer = output.strip().splitlines()[-1].partition(" ")
    assert status == "200", output
    return list(json.loads(answer))


CLAIM = "spiffe://evil.example/claimed"


def test_the_inbound_proxy_names_a_meshed_caller_and_drops_any_claim(
    engine, lab: Lab, registrar: dict[str, Any], mesh_settings: Settings
) -> None:
    """The fact the service's trust rests on, read from the real proxy: through the mesh
    the server's proxy replaces a caller's own `l5d-client-id` with the SPIFFE ID of the
    caller's SVID; in plaintext from outside the mesh it drops the claim."""
    names = {"headers": "meshexp-headers", "headers-client": "meshexp-headers-client"}
    with tempfile.TemporaryDirectory() as manifests:
        try:
            for as_name, container in names.items():
                run_in_lab(
                    lab=lab,
                    workload=registrar["echo_workload"],
                    settings=mesh_settings,
                    manifests_dir=Path(manifests),
                    image=registrar["echo"],
                    name=container,
                    env={"WORKLOAD_NAME": as_name},
                )
            meshed = headers_seen(
                names["headers-client"], "http://headers.faces.svc.cluster.local:8080/headers"
            )
            wanted = mesh_settings.identity_of("faces", "headers-client").spiffe_id
            assert [v for k, v in meshed if k == "l5d-client-id"] == [wanted], meshed
            docker_engine.remove_container("plain-caller")
            engine.containers.run(
                registrar["plain"], name="plain-caller", detach=True, network=lab.network
            )
            server = docker_engine.container_ip(names["headers"], lab.network)
            plain = headers_seen("plain-caller", f"http://{server}:8080/headers")
            assert [v for k, v in plain if k == "l5d-client-id"] == [], plain
            assert ["host", f"{server}:8080"] in plain  # the call did arrive
        finally:
            for container in names.values():
                stop_workload(
                    name=container, manifests_dir=Path(manifests), kubeconfig=lab.kubeconfig
                )


def test_a_workload_registers_by_its_identity_and_heartbeats_write_nothing(
    engine, lab: Lab, registrar: dict[str, Any], mesh_settings: Settings
) -> None:
    client = registrar["client"]
    ip = started(engine, lab, "echo-1", registrar["echo"])
    status, answer = call("echo-1", "PUT", {"addresses": [ip], "ready": True})
    assert status == 200, answer
    assert answer["name"] == "echo-1"
    assert answer["probe"] == {"path": "/ready", "port": 8080}
    obj = held(client, "echo-1")
    assert obj is not None
    identity = mesh_settings.identity_of("faces", "echo-1").spiffe_id
    assert obj["spec"]["meshTLS"]["identity"] == identity
    assert obj["spec"]["workloadIPs"] == [{"ip": ip}]
    assert obj["metadata"]["labels"]["app"] == "echo"
    assert (kube.ready_condition("echo-1", "faces", client) or {}).get("status") == "True"
    assert kube.get_object(client, kube.ObjectRef("Service", "echo", "faces")) is not None
    version = obj["metadata"]["resourceVersion"]
    for _ in range(3):  # heartbeats with nothing new
        assert call("echo-1", "PUT", {"addresses": [ip], "ready": True})[0] == 200
    again = held(client, "echo-1")
    assert again is not None
    assert again["metadata"]["resourceVersion"] == version
    # The probe fails: Ready False, with the workload's own line.
    status, _ = call("echo-1", "PUT", {"addresses": [ip], "ready": False, "message": "GET / 503"})
    assert status == 200
    condition = kube.ready_condition("echo-1", "faces", client) or {}
    assert (condition.get("status"), condition.get("reason")) == ("False", "ProbeFailed")
    # Deregistered on its own word.
    status, answer = call("echo-1", "DELETE", None)
    assert (status, answer.get("removed")) == (200, True), answer
    assert held(client, "echo-1") is None


def test_claims_the_proxy_did_not_make_are_refused_and_change_nothing(
    engine, lab: Lab, registrar: dict[str, Any], mesh_settings: Settings
) -> None:
    client = registrar["client"]
    ip = started(engine, lab, "echo-2", registrar["echo"])
    # An address outside the group's networks.
    status, answer = call("echo-2", "PUT", {"addresses": ["10.99.0.5"]})
    assert status == 403, answer
    # A meshed caller's own header naming another workload: its proxy's word stands.
    other = mesh_settings.identity_of("faces", "echo-9").spiffe_id
    status, answer = call("echo-2", "PUT", {"addresses": [ip]}, claim=other)
    assert (status, answer.get("name")) == (200, "echo-2"), answer
    assert held(client, "echo-9") is None
    # A workload whose identity the group does not admit.
    started(engine, lab, "intruder", registrar["echo"])
    status, answer = call("intruder", "PUT", {"addresses": [ip]})
    assert status == 403, answer
    assert held(client, "intruder") is None
    # From outside the mesh, in plaintext to the service's own address (no proxy of its
    # own to find the Service by), claiming echo-2's identity.
    docker_engine.remove_container("plain-caller")
    engine.containers.run(registrar["plain"], name="plain-caller", detach=True, network=lab.network)
    before = held(client, "echo-2")
    assert before is not None
    claimed = mesh_settings.identity_of("faces", "echo-2").spiffe_id
    direct = REGISTRATION.replace(
        urllib.parse.urlsplit(URL).hostname or "",
        docker_engine.container_ip(install.NAME, lab.network),
    )
    status, answer = call("plain-caller", "DELETE", None, claim=claimed, url=direct)
    assert status == 401, answer
    after = held(client, "echo-2")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_missed_heartbeats_make_it_not_ready_then_remove_it(
    engine, lab: Lab, registrar: dict[str, Any]
) -> None:
    client = registrar["client"]
    ip = started(engine, lab, "echo-1", registrar["echo"])
    assert call("echo-1", "PUT", {"addresses": [ip], "ready": True})[0] == 200
    silent_from = time.monotonic()
    assert faces.wait_for(
        lambda: (
            (kube.ready_condition("echo-1", "faces", client) or {}).get("reason")
            == "HeartbeatMissed"
        ),
        timeout=PERIOD * FAILURES + 30,
    )
    assert time.monotonic() - silent_from >= PERIOD * FAILURES
    assert faces.wait_for(lambda: held(client, "echo-1") is None, timeout=GRACE + 30)


def test_a_restarted_service_keeps_what_it_made_and_writes_nothing_that_is_right(
    engine, lab: Lab, registrar: dict[str, Any]
) -> None:
    client = registrar["client"]
    ip = started(engine, lab, "echo-1", registrar["echo"])
    assert call("echo-1", "PUT", {"addresses": [ip], "ready": True})[0] == 200
    before = held(client, "echo-1")
    assert before is not None
    docker_engine.restart_container(install.NAME)
    assert faces.wait_for(  # started again: it says what it holds
        lambda: docker_engine.container_logs(install.NAME).count(": holding ") >= 2,
        timeout=60,
    ), docker_engine.container_logs(install.NAME)[-2000:]
    assert faces.wait_for(
        lambda: call("echo-1", "PUT", {"addresses": [ip], "ready": True})[0] == 200, timeout=60
    )
    after = held(client, "echo-1")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert call("echo-1", "DELETE", None)[0] == 200


def test_the_bootstrap_registers_by_itself_reports_its_probe_and_deregisters_on_stop(
    engine, lab: Lab, registrar: dict[str, Any], mesh_settings: Settings
) -> None:
    """The walk-through's `docker run` plus MESHEXP_REGISTRAR and MESHEXP_GROUP, and no
    credential: the bootstrap registers through its proxy once it is ready, heartbeats
    with the group's probe, comes back after docker restart, and deregisters on docker
    stop."""
    client = registrar["client"]
    env = {
        "WORKLOAD_NAME": "echo-3",
        "MESHEXP_REGISTRAR": f"{install.NAME}.{NAMESPACE}.svc.cluster.local:{install.PORT}",
        "MESHEXP_GROUP": "echoes",
    }
    container = docker_run(engine, lab, "echo-3", registrar["echo"], env)

    def ready_is(status: str) -> bool:
        return (kube.ready_condition("echo-3", "faces", client) or {}).get("status") == status

    assert faces.wait_for(lambda: ready_is("True"), timeout=90), container.logs()[-3000:]
    obj = held(client, "echo-3")
    assert obj is not None
    assert obj["spec"]["meshTLS"]["identity"] == (
        mesh_settings.identity_of("faces", "echo-3").spiffe_id
    )
    assert obj["spec"]["workloadIPs"] == [{"ip": docker_engine.container_ip("echo-3", lab.network)}]
    assert "registration: registered with" in container.logs().decode()
    # docker restart: deregistered on the stop, registered again by the new bootstrap.
    container.restart(timeout=10)
    assert faces.wait_for(
        lambda: (
            container.logs().decode().count("registration: registered with") >= 2
            and ready_is("True")
        ),
        timeout=90,
    ), container.logs()[-3000:]
    # The group's probe (GET /ready) fails while the service runs: Ready False.
    code, output = docker_engine.exec_in(
        "echo-3",
        [
            "python3",
            "-c",
            "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/ready/off')",
        ],
        user="1000",
    )
    assert code == 0, output
    assert faces.wait_for(lambda: ready_is("False"), timeout=PERIOD * 3 + 20)
    condition = kube.ready_condition("echo-3", "faces", client) or {}
    assert condition.get("reason") == "ProbeFailed", condition
    # docker stop: removed at once, not after the group's grace.
    container.stop(timeout=10)
    stopped = time.monotonic()
    assert faces.wait_for(lambda: held(client, "echo-3") is None, timeout=GRACE + 30)
    assert time.monotonic() - stopped < GRACE / 2, "removed by the grace, not by the stop"
    assert "registration: deregistered (200)" in container.logs().decode()
