"""The Faces trio off-cluster with `run`: every hop passes through the proxies."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from builder.catalog import find_workload
from builder.checks import http_status, tcp_open_total
from builder.run import run_workload, stop_workload


def test_face_gets_smiley_and_color_through_the_proxies(
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
    before = {
        name: (tcp_open_total(ip, "inbound"), tcp_open_total(ip, "outbound"))
        for name, ip in ips.items()
    }
    status, body = http_status(ips["face"], 8000, "/", timeout=20)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["smiley"] == "\U0001f600"
    assert answer["color"] == "#0173b2"
    after = {
        name: (tcp_open_total(ip, "inbound"), tcp_open_total(ip, "outbound"))
        for name, ip in ips.items()
    }
    assert after["face"][0] == before["face"][0] + 1  # our request, inbound
    assert after["face"][1] == before["face"][1] + 2  # to smiley and color, outbound
    assert after["smiley"][0] == before["smiley"][0] + 1
    assert after["color"][0] == before["color"][0] + 1
    # run wrote the manifests for each container's address
    external, _ = yaml.safe_load_all(results["smiley"].manifest.read_text())
    assert external["spec"]["workloadIPs"] == [{"ip": ips["smiley"]}]
    assert results["smiley"].status_patch is not None
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
