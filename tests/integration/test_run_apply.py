"""`run --apply` and `stop` against the real API server, with a real container."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lightkube import codecs
from lightkube.resources.core_v1 import Service

from builder.cluster import kube
from builder.cluster.keeper import StatusKeeper, Target, targets_from_manifests
from builder.cluster.run import run_workload, stop_workload
from builder.config.catalog import find_workload

pytestmark = pytest.mark.kube


def test_run_apply_makes_it_ready_again_and_again_and_stop_cleans_up(
    build, offline_settings, network, certs, apiserver, tmp_path: Path
) -> None:
    client = kube.connect(apiserver.kubeconfig)
    kube.ensure_namespace(client, "faces")
    bystander = codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "bystander", "namespace": "faces"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    client.apply(bystander, force=True, field_manager="someone-else")
    image = build("smiley")

    def run():
        return run_workload(
            workload=find_workload("smiley"),
            settings=offline_settings,
            certs=certs,
            network=network,
            manifests_dir=tmp_path / "manifests",
            image=image.reference,
            name=f"{network}-smiley",
            kubeconfig=apiserver.kubeconfig,
            apply=True,
            timeout=120,
        )

    first = run()
    assert first.applied
    ready = kube.ready_condition("smiley", "faces", client)
    assert ready is not None
    assert ready["status"] == "True"
    workload = client.get(kube.ExternalWorkload, "smiley", namespace="faces")
    assert workload["spec"]["workloadIPs"] == [{"ip": first.ip}]
    service_version = client.get(Service, "smiley", namespace="faces").metadata.resourceVersion

    second = run()  # replaces the container; the cluster objects follow, nothing else changes
    workload = client.get(kube.ExternalWorkload, "smiley", namespace="faces")
    assert workload["spec"]["workloadIPs"] == [{"ip": second.ip}]
    assert client.get(Service, "smiley", namespace="faces").metadata.resourceVersion == (
        service_version
    )

    removed, files = stop_workload(
        name=f"{network}-smiley",
        manifests_dir=tmp_path / "manifests",
        kubeconfig=apiserver.kubeconfig,
    )
    assert removed
    assert files
    assert kube.ready_condition("smiley", "faces", client) is None  # gone
    assert {s.metadata.name for s in client.list(Service, namespace="faces")} == {"bystander"}


def wait_for(keeper, reason: str, timeout: float = 30) -> float:
    """Step the keeper until the written reason is `reason`; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        keeper.step()
        written = keeper.written.get(keeper.targets[0].container)
        if written is not None and written.reason == reason:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"no {reason} within {timeout}s: {keeper.written}")


def test_the_keeper_keeps_ready_true_to_the_container(
    engine, build, offline_settings, network, certs, apiserver, tmp_path: Path
) -> None:
    client = kube.connect(apiserver.kubeconfig)
    kube.ensure_namespace(client, "faces")
    container = f"{network}-keeper"
    run_workload(
        workload=find_workload("smiley"),
        settings=offline_settings,
        certs=certs,
        network=network,
        manifests_dir=tmp_path / "manifests",
        image=build("smiley").reference,
        name=container,
        env={"WORKLOAD_NAME": "keeper"},
        kubeconfig=apiserver.kubeconfig,
        apply=True,
        timeout=120,
    )
    keeper = StatusKeeper(apiserver.kubeconfig, targets_from_manifests(tmp_path / "manifests"))

    def condition() -> dict:
        found = kube.ready_condition("keeper", "faces", client)
        assert found is not None
        return found

    wait_for(keeper, "Ready")
    writes = keeper.writes
    for _ in range(3):
        keeper.step()
    assert keeper.writes == writes  # no change, no write

    box = engine.containers.get(container)
    box.pause()
    wait_for(keeper, "ContainerPaused")
    assert condition()["status"] == "False"
    assert condition()["lastTransitionTime"]
    box.unpause()
    wait_for(keeper, "Ready")
    assert condition()["status"] == "True"

    # The workload dies: the proxy's port stops listening, then the bootstrap stops it all.
    kill = (
        'for p in /proc/[0-9]*; do [ "$(stat -c %u "$p")" = 2200 ] && kill -9 "${p#/proc/}"; done'
    )
    box.exec_run(["bash", "-c", kill + "; true"], user="0")  # no procps in the image
    wait_for(keeper, "ContainerStopped")
    assert condition()["reason"] == "ContainerStopped"

    box.start()
    wait_for(keeper, "Ready", timeout=120)
    assert condition()["status"] == "True"
    box.stop(timeout=10)
    wait_for(keeper, "ContainerStopped")
    assert condition()["status"] == "False"


def test_the_keeper_rides_out_an_api_server_that_is_away(tmp_path: Path, apiserver) -> None:
    """Unreachable: backoff and nothing counted as written; back: the truth is written."""
    away = tmp_path / "away.kubeconfig"
    text = apiserver.kubeconfig.read_text()
    port = apiserver.url.rsplit(":", 1)[1]
    away.write_text(text.replace(f":{port}", ":1"))
    target = Target("no-such-container", "away", "faces", 8000)
    said: list[str] = []
    keeper = StatusKeeper(away, [target], on_error=said.append)
    keeper.step()
    assert keeper.backoff > 0
    assert keeper.written == {}
    assert "the API server did not answer" in said[-1]
    keeper.step()  # within the backoff: not even tried
    assert len(said) == 1
    kube.ensure_namespace(kube.connect(apiserver.kubeconfig), "faces")
    keeper.kubeconfig, keeper.retry_at, keeper.client = apiserver.kubeconfig, 0.0, None
    keeper.step()  # back; the object does not exist: said plainly, and the keeper goes on
    assert keeper.backoff == 0.0
    assert said[-1].startswith("ExternalWorkload faces/away:")
