"""`run --apply` and `stop` against the real API server, with a real container."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import codecs
from lightkube.resources.core_v1 import Service

from builder import kube
from builder.catalog import find_workload
from builder.run import run_workload, stop_workload

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
