"""`register` in the mesh lab: the walk-through's own `docker run` lines, no `run`, and
the registration beside them (a real control plane, the real proxy, the real Faces
programs in our images).

Three smileys (told apart by SMILEY, one `-e` more than the walk-through's lines),
color and face are started by plain `docker run`; the registrar, started after most
of them, registers each as its own ExternalWorkload behind one Service. What face
answers shows which smileys get traffic: all three; not one whose probe fails while
its process lives (an iptables rule refuses the probe's UID, never the proxy's), and
that one again once its probe passes; not one removed, which is deregistered.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from builder.build.image import build_workload_image
from builder.check.answers import GRINNING
from builder.cli.main import main
from builder.cluster import kube
from builder.cluster.registrar import OWNER
from builder.config.catalog import find_workload
from builder.config.group import Group
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab, register_in_lab
from harness import faces
from harness.registration import (
    Running,
    all_ready,
    docker_run,
    ready,
    refuse_probe,
    serving,
)

pytestmark = pytest.mark.mesh
HEART_EYES = "&#x1F60D;"
ROLLING_EYES = "&#x1F644;"
SMILEYS = {"smiley-1": ("Grinning", GRINNING), "smiley-2": ("HeartEyes", HEART_EYES)}
LATE = ("smiley-3", ("RollingEyes", ROLLING_EYES))  # started while the registrar runs
OWNER_ID = "test-engine"
# smiley's probe (images/smiley.yaml): every 10 s, 1 s each, 3 failures in a row.
PERIOD, TIMEOUT, FAILURES = 10, 1, 3
PROBE_WINDOW = PERIOD * (FAILURES + 1) + TIMEOUT * FAILURES + 15  # a loaded 2-core CI


# A newcomer to face's balancer starts at the proxy's default latency estimate and is
# chosen once that has decayed below the others' (seconds, tens of seconds on a loaded
# machine): tests that want an instance to answer call until it has.
NEWCOMER_WINDOW = 120


def smileys_from_face(face_ip: str, calls: int = 45) -> Counter[str]:
    """Which smileys face's answers carry, over `calls` calls."""
    seen: Counter[str] = Counter()
    for _ in range(calls):
        seen[smiley_from_face(face_ip)] += 1
    return seen


def smiley_from_face(face_ip: str) -> str:
    answer = faces.http_call(face_ip, "GET", "/", {"X-Faces-User": "mesh"})
    assert answer["status"] == 200, answer
    return str(answer["body"]["smiley"])


def smileys_until(face_ip: str, wanted: set[str]) -> Counter[str]:
    """face's answers, called until every smiley in `wanted` has answered or
    NEWCOMER_WINDOW seconds pass; every answer counted."""
    seen: Counter[str] = Counter()

    def all_seen() -> bool:
        seen[smiley_from_face(face_ip)] += 1
        return wanted <= set(seen)

    faces.wait_for(all_seen, timeout=NEWCOMER_WINDOW, every=0.2)
    return seen


@pytest.fixture(scope="module")
def images(mesh_settings: Settings) -> dict[str, str]:
    return {
        name: build_workload_image(workload=find_workload(name), settings=mesh_settings).reference
        for name in ("smiley", "color", "face")
    }


@pytest.fixture(scope="module")
def walkthrough(engine, lab: Lab, images: dict[str, str]) -> Iterator[dict[str, Any]]:
    """smiley-1, smiley-2, color and face by `docker run`, then the registrar, then
    smiley-3: everything registered and Ready."""
    started = {}
    services = "{}.faces.svc.cluster.local:8000"
    env = {
        "color": {"WORKLOAD_NAME": "color", "COLOR": "blue"},
        "face": {
            "WORKLOAD_NAME": "face",
            "SMILEY_SERVICE": services.format("smiley"),
            "COLOR_SERVICE": services.format("color"),
        },
    }
    names = [*SMILEYS, LATE[0], "color", "face"]
    try:
        for name, (smiley, _) in SMILEYS.items():
            started[name] = docker_run(
                engine, lab, name, images["smiley"], {"WORKLOAD_NAME": "smiley", "SMILEY": smiley}
            )
        for name in ("color", "face"):
            started[name] = docker_run(engine, lab, name, images[name], env[name])
        running = Running(lab, OWNER_ID)
        started[LATE[0]] = docker_run(
            engine,
            lab,
            LATE[0],
            images["smiley"],
            {"WORKLOAD_NAME": "smiley", "SMILEY": LATE[1][0]},
        )
        client = kube.connect(lab.kubeconfig)
        assert faces.wait_for(lambda: all_ready(client, names), timeout=180), (
            {name: ready(client, name) for name in names},
            running.lines[-20:],
        )
        ips = {name: docker_engine.container_ip(name, lab.network) for name in names}
        held: dict[str, Any] = {
            "running": running,
            "client": client,
            "ips": ips,
            "containers": started,
        }
        yield held
        held["running"].end()
    finally:
        for name in names:
            docker_engine.remove_container(name)


def test_each_container_is_registered_as_its_own_instance(walkthrough: dict[str, Any]) -> None:
    client = walkthrough["client"]
    registered = kube.list_objects(client, "ExternalWorkload", {OWNER: OWNER_ID}, "faces")
    by_name = {obj["metadata"]["name"]: obj for obj in registered}
    assert sorted(by_name) == ["color", "face", "smiley-1", "smiley-2", "smiley-3"]
    for name, obj in by_name.items():
        assert obj["spec"]["workloadIPs"] == [{"ip": walkthrough["ips"][name]}]
    assert {by_name[f"smiley-{n}"]["metadata"]["labels"]["app"] for n in (1, 2, 3)} == {"smiley"}
    service = kube.get_object(client, kube.ObjectRef("Service", "smiley", "faces"))
    assert service is not None
    assert service["spec"]["selector"] == {"app": "smiley"}
    assert service["metadata"]["labels"][OWNER] == OWNER_ID


def test_face_gets_answers_from_all_three_over_mtls(walkthrough: dict[str, Any]) -> None:
    client = walkthrough["client"]
    smileys = {*SMILEYS, LATE[0]}
    assert faces.wait_for(lambda: serving(client, "smiley") == smileys, timeout=30), serving(
        client, "smiley"
    )
    seen = smileys_until(walkthrough["ips"]["face"], {GRINNING, HEART_EYES, ROLLING_EYES})
    assert set(seen) == {GRINNING, HEART_EYES, ROLLING_EYES}, seen  # and no fallback
    logs = docker_engine.container_logs("smiley-1")
    assert "workload ready" in logs


def test_a_restarted_registrar_writes_nothing_that_is_right(
    walkthrough: dict[str, Any], lab: Lab
) -> None:
    client = walkthrough["client"]
    walkthrough["running"].end()
    before = {
        obj["metadata"]["name"]: obj["metadata"]["resourceVersion"]
        for obj in kube.list_objects(client, "ExternalWorkload", {OWNER: OWNER_ID}, "faces")
    }
    again = register_in_lab(lab=lab, group=Group(), owner=OWNER_ID, say=lambda line: None)
    again.step()
    again.step(resync=False)
    after = {
        obj["metadata"]["name"]: obj["metadata"]["resourceVersion"]
        for obj in kube.list_objects(client, "ExternalWorkload", {OWNER: OWNER_ID}, "faces")
    }
    assert (again.applies, again.keeper.writes) == (0, 0)
    assert after == before
    walkthrough["running"] = Running(lab, OWNER_ID)


def test_a_failing_probe_takes_an_instance_out_and_a_passing_one_brings_it_back(
    walkthrough: dict[str, Any],
) -> None:
    client, face = walkthrough["client"], walkthrough["ips"]["face"]
    refuse_probe("smiley-2", add=True)
    try:
        assert faces.wait_for(
            lambda: (ready(client, "smiley-2") or {}).get("status") == "False",
            timeout=PROBE_WINDOW,
        ), ready(client, "smiley-2")
        condition = ready(client, "smiley-2")
        assert condition is not None
        assert condition["reason"] == "ProbeFailed"
        assert "http GET /" in condition["message"]  # the probe's own answer
        assert docker_engine.container_state("smiley-2")["Running"]  # the process lives
        # Linkerd's controller drops the endpoint; face's proxy follows within seconds.
        assert faces.wait_for(lambda: "smiley-2" not in serving(client, "smiley"), timeout=30)
        assert faces.wait_for(lambda: HEART_EYES not in smileys_from_face(face, 15), timeout=30), (
            "smiley-2 still gets traffic while it is not ready"
        )
        seen = smileys_from_face(face)
        # Only the ready ones (with two endpoints Linkerd's balancer compares both and
        # may well send every sequential call to the faster one).
        assert set(seen) <= {GRINNING, ROLLING_EYES}, seen
    finally:
        refuse_probe("smiley-2", add=False)
    assert faces.wait_for(lambda: all_ready(client, ["smiley-2"]), timeout=PERIOD * 2 + 15)
    assert faces.wait_for(lambda: "smiley-2" in serving(client, "smiley"), timeout=30)
    seen = smileys_until(face, {HEART_EYES})
    assert HEART_EYES in seen, seen


def test_a_removed_container_is_deregistered_and_gets_no_traffic(
    walkthrough: dict[str, Any],
) -> None:
    client, face = walkthrough["client"], walkthrough["ips"]["face"]
    docker_engine.remove_container("smiley-3")
    assert faces.wait_for(
        lambda: (
            kube.get_object(client, kube.ObjectRef("ExternalWorkload", "smiley-3", "faces")) is None
        ),
        timeout=30,
    )
    assert any("faces/smiley-3: deregistered" in line for line in walkthrough["running"].lines)
    assert faces.wait_for(lambda: "smiley-3" not in serving(client, "smiley"), timeout=30)
    assert faces.wait_for(lambda: ROLLING_EYES not in smileys_from_face(face, 15), timeout=30)
    seen = smileys_from_face(face)
    assert set(seen) <= {GRINNING, HEART_EYES}, seen  # the two left (balanced as above)
    service = kube.get_object(client, kube.ObjectRef("Service", "smiley", "faces"))
    assert service is not None  # two instances are left


def test_cli_register_once_in_the_lab_reports_what_it_holds(
    walkthrough: dict[str, Any], lab: Lab
) -> None:
    result = CliRunner().invoke(
        main, ["register", "--lab", str(lab.folder), "--id", OWNER_ID, "--once", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    held = json.loads(result.output)
    assert held["registrar"] == OWNER_ID
    assert sorted(i["name"] for i in held["registered"]) == [
        "color",
        "face",
        "smiley-1",
        "smiley-2",
    ]
