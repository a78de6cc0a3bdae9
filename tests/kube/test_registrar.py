"""`register` against a real kube-apiserver with Linkerd's CRDs: the objects and their
labels, idempotence (a second round and a restarted registrar write nothing), removal,
and objects it did not make left alone.

The containers are given as the engine's `docker inspect` attributes (the shape
builder.engine.docker_engine.containers_labelled returns); the lab test in
tests/integration/test_registration.py registers real containers.
"""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import codecs

from builder.cluster import kube
from builder.cluster.registrar import OWNER, Registrar
from builder.config.group import Group
from builder.config.settings import Settings
from harness.registration import inspected

NAMESPACE = "reg"


def container(name: str, ip: str, *, running: bool = True) -> dict[str, Any]:
    return inspected(name, ip, running=running, env={"WORKLOAD_NAMESPACE": NAMESPACE})


def versions(client: Any) -> dict[str, str]:
    """Each object's resourceVersion, by kind and name: what a write would change."""
    found = {}
    for kind in ("ExternalWorkload", "Service"):
        for obj in kube.list_objects(client, kind, {}, NAMESPACE):
            meta = obj["metadata"]
            found[f"{kind}/{meta['name']}"] = meta["resourceVersion"]
    return found


@pytest.fixture
def client(apiserver):
    client = kube.connect(apiserver.kubeconfig)
    kube.ensure_namespace(client, NAMESPACE)
    yield client
    for kind in ("ExternalWorkload", "Service"):
        for obj in kube.list_objects(client, kind, {}, NAMESPACE):
            client.delete(kube.KINDS[kind], obj["metadata"]["name"], namespace=NAMESPACE)


def registrar(apiserver, owner: str = "host-a", **group: Any) -> Registrar:
    return Registrar(apiserver.kubeconfig, Group(**group), owner)


def test_each_container_is_its_own_external_workload_behind_one_service(apiserver, client) -> None:
    three = [container(f"smiley-{n}", f"172.30.0.{10 + n}") for n in (1, 2, 3)]
    registrar(apiserver, service={"port": 80}, labels={"team": "edge"}).sync(client, three)
    external = {
        obj["metadata"]["name"]: obj
        for obj in kube.list_objects(client, "ExternalWorkload", {"app": "smiley"}, NAMESPACE)
    }
    assert sorted(external) == ["smiley-1", "smiley-2", "smiley-3"]
    identity = Settings().identity_of(NAMESPACE, "smiley")
    for n in (1, 2, 3):
        obj = external[f"smiley-{n}"]
        assert obj["metadata"]["labels"] == {
            "app": "smiley",
            "team": "edge",
            "app.kubernetes.io/managed-by": "meshexp-build",
            OWNER: "host-a",
        }
        assert obj["metadata"]["annotations"]["meshexp.io/container"].startswith(f"smiley-{n} ")
        assert obj["spec"]["workloadIPs"] == [{"ip": f"172.30.0.{10 + n}"}]
        assert obj["spec"]["meshTLS"] == {
            "identity": identity.spiffe_id,
            "serverName": identity.dns_name,
        }
        assert [p["name"] for p in obj["spec"]["ports"]] == ["http", "metrics"]
    service = kube.get_object(client, kube.ObjectRef("Service", "smiley", NAMESPACE))
    assert service is not None
    assert service["spec"]["selector"] == {"app": "smiley"}
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["metadata"]["labels"][OWNER] == "host-a"


def test_a_second_round_and_a_restarted_registrar_write_nothing(apiserver, client) -> None:
    three = [container(f"smiley-{n}", f"172.30.0.{10 + n}") for n in (1, 2, 3)]
    first = registrar(apiserver)
    first.sync(client, three)
    assert first.applies == 4  # three ExternalWorkloads and the Service
    before = versions(client)
    first.sync(client, three)
    restarted = registrar(apiserver)
    restarted.sync(client, three)
    assert (first.applies, restarted.applies) == (4, 0)
    assert versions(client) == before


def test_a_new_address_is_applied_and_a_stopped_container_stays_registered(
    apiserver, client
) -> None:
    keeper = registrar(apiserver)
    keeper.sync(
        client, [container("smiley-1", "172.30.0.11"), container("smiley-2", "172.30.0.12")]
    )
    keeper.sync(
        client,
        [container("smiley-1", "172.30.0.21"), container("smiley-2", "", running=False)],
    )
    held = {
        obj["metadata"]["name"]: obj["spec"]["workloadIPs"]
        for obj in kube.list_objects(client, "ExternalWorkload", {}, NAMESPACE)
    }
    assert held == {"smiley-1": [{"ip": "172.30.0.21"}], "smiley-2": [{"ip": "172.30.0.12"}]}
    assert [t.container for t in keeper.keeper.targets] == ["smiley-1", "smiley-2"]


def test_a_removed_container_is_marked_not_ready_then_deleted_and_the_last_takes_the_service(
    apiserver, client
) -> None:
    reg = registrar(apiserver)
    reg.sync(client, [container("smiley-1", "172.30.0.11"), container("smiley-2", "172.30.0.12")])
    reg.sync(client, [container("smiley-1", "172.30.0.11")])
    assert (
        kube.get_object(client, kube.ObjectRef("ExternalWorkload", "smiley-2", NAMESPACE)) is None
    )
    assert kube.get_object(client, kube.ObjectRef("Service", "smiley", NAMESPACE)) is not None
    reg.sync(client, [])
    assert kube.list_objects(client, "ExternalWorkload", {}, NAMESPACE) == []
    assert kube.get_object(client, kube.ObjectRef("Service", "smiley", NAMESPACE)) is None


def foreign(name: str, ip: str, labels: dict[str, str]) -> dict[str, Any]:
    identity = Settings().identity_of(NAMESPACE, "smiley")
    return {
        "apiVersion": "workload.linkerd.io/v1beta1",
        "kind": "ExternalWorkload",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "meshTLS": {"identity": identity.spiffe_id, "serverName": identity.dns_name},
            "workloadIPs": [{"ip": ip}],
            "ports": [{"name": "http", "port": 8000}],
        },
    }


def test_objects_it_did_not_make_are_left_alone(apiserver, client) -> None:
    """A hand-made ExternalWorkload of a container's name, another engine's registration
    and a hand-made Service: none is changed or deleted."""
    client.create(codecs.from_dict(foreign("smiley-1", "10.9.9.1", {"app": "smiley"})))
    client.create(
        codecs.from_dict(foreign("smiley-far", "10.9.9.2", {"app": "smiley", OWNER: "host-b"}))
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "smiley", "namespace": NAMESPACE, "labels": {"by": "hand"}},
        "spec": {"selector": {"app": "smiley"}, "ports": [{"port": 8000, "targetPort": "http"}]},
    }
    client.create(codecs.from_dict(service))
    before = versions(client)
    reg = registrar(apiserver)
    reg.sync(client, [container("smiley-1", "172.30.0.11"), container("smiley-2", "172.30.0.12")])
    assert "not made by this registrar" in reg.skipped["smiley-1"]
    after = versions(client)
    assert {key: after[key] for key in before} == before  # nothing of theirs was written
    assert set(after) - set(before) == {"ExternalWorkload/smiley-2"}
    reg.sync(client, [])  # ours goes; theirs, and the Service that still selects theirs, stay
    assert versions(client) == before
