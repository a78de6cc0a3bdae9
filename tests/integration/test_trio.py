"""The Faces trio off-cluster with `run`, each behind its own (real) proxy.

Without a control plane the real linkerd2-proxy serves inbound traffic under
its default policy but holds every outbound connection until a policy
controller answers for its target. So this proves what holds here: smiley and
color answer through their inbound proxies, and face's calls to them are
captured by face's proxy. face's full answer across three proxies needs a
control plane (the mesh lab); the stand-in holds outbound connections alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from builder.check import grpcwire
from builder.check.answers import GRINNING
from builder.check.live import http_status, tcp_open_total
from builder.check.traffic import landed_on_proxy, outbound_connection
from builder.cluster.run import run_workload, stop_workload
from builder.config.catalog import find_workload
from builder.engine import docker_engine


def test_trio_each_behind_its_proxy(
    build, offline_settings, network, certs, tmp_path: Path
) -> None:
    images = {name: build(name) for name in ("smiley", "color", "face")}
    manifests = tmp_path / "manifests"
    names = {name: f"{network}-{name}" for name in images}
    results = {}
    for name in ("smiley", "color", "face"):
        env = {}
        if name == "face":
            env = {
                "SMILEY_SERVICE": f"{names['smiley']}:8000",
                "COLOR_SERVICE": f"{names['color']}:8000",
            }
        results[name] = run_workload(
            workload=find_workload(name),
            settings=offline_settings,
            certs=certs,
            network=network,
            manifests_dir=manifests,
            image=images[name].reference,
            name=names[name],
            node_name="$(hostname)",
            env=env,
            timeout=120,
        )
    ips = {name: result.ip for name, result in results.items()}
    # smiley over HTTP/1, color over gRPC, each through its own inbound proxy.
    before = tcp_open_total(ips["smiley"], "inbound")
    status, body = http_status(ips["smiley"], 8000, "/", timeout=20)
    assert status == 200, body
    assert json.loads(body)["smiley"] == GRINNING
    assert tcp_open_total(ips["smiley"], "inbound") == before + 1
    before = tcp_open_total(ips["color"], "inbound")
    answer = grpcwire.call(ips["color"], 8000, "/ColorService/Edge", b"", timeout=20)
    assert answer.grpc_status == 0, answer.summary()
    assert grpcwire.decode_message(answer.messages[0])[1] == [b"#66CCEE"]  # blue
    assert tcp_open_total(ips["color"], "inbound") == before + 1

    # face's calls to smiley and color are captured by face's own proxy.
    def run_in_face(command: list[str], user: str) -> tuple[int, str]:
        return docker_engine.exec_in(names["face"], command, user=user)

    for backend in ("smiley", "color"):
        peer = f"{ips[backend]}:8000"
        uid = images["face"].labels["io.meshexp.workload-uid"]
        _, sockets = outbound_connection(run_in_face, uid, peer)
        landed = landed_on_proxy(sockets, peer, proxy_uid=2102)
        assert landed == "127.0.0.1:4140"

    # run wrote the manifests for each container's address
    external, _ = yaml.safe_load_all(results["smiley"].manifest.read_text())
    assert external["spec"]["workloadIPs"] == [{"ip": ips["smiley"]}]
    assert results["smiley"].status_patch is not None
    # Both steps, pasteable: without the status patch the workload is never Ready.
    apply, patch = results["smiley"].apply_commands
    assert apply == f"kubectl apply -f {results['smiley'].manifest}"
    assert patch.startswith("kubectl patch externalworkload smiley -n faces --subresource status")
    assert patch.endswith(f"--patch-file {results['smiley'].status_patch}")
    # running again replaces the container cleanly
    again = run_workload(
        workload=find_workload("smiley"),
        settings=offline_settings,
        certs=certs,
        network=network,
        manifests_dir=manifests,
        image=images["smiley"].reference,
        name=names["smiley"],
        timeout=120,
    )
    assert again.ready_seconds > 0
    removed, files = stop_workload(name=names["smiley"], manifests_dir=manifests)
    assert removed
    assert files == [results["smiley"].manifest]
    assert stop_workload(name=names["smiley"], manifests_dir=manifests) == (False, files)
