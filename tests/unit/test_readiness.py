"""The readiness probe: declared in the catalog (or defaulted by the first port's protocol),
carried by the image (its label, its probe file, Docker's HEALTHCHECK), and read back by
the keeper from Docker's health results."""

from __future__ import annotations

import json

import pytest

from builder.build.render import readiness_label, render_files
from builder.cluster.keeper import READINESS_LABEL, probe_health
from builder.config.catalog import find_workload
from builder.config.probes import ProbeEntry
from builder.config.settings import Settings
from builder.core import image_contract
from builder.core.errors import CatalogError

BASE = """\
name: demo
namespace: faces
ports:
  - {name: web, port: 8080, protocol: TCP, app_protocol: APP}
  - {name: admin, port: 9000, protocol: TCP}
user: {name: workload, uid: 2200}
debian: {packages: [busybox]}
command: [/bin/busybox, httpd, -f]
"""


@pytest.mark.parametrize(
    ("app", "kind", "described"),
    [
        ("http", "http", "http GET / on port 8080 (any status below 500)"),
        ("grpc", "grpc", "grpc /grpc.health.v1.Health/Check on port 8080"),
        ("opaque", "tcp", "tcp connect to port 8080"),
    ],
)
def test_the_default_probe_follows_the_first_ports_protocol(
    write_workload, app: str, kind: str, described: str
) -> None:
    probe = write_workload(BASE.replace("APP", app)).probe
    assert (probe.kind, probe.describe()) == (kind, described)
    # Kubernetes' defaults.
    assert probe.timings == {
        "initial_delay": 0,
        "period": 10,
        "timeout": 1,
        "success_threshold": 1,
        "failure_threshold": 3,
    }


def test_a_declared_probe_names_its_port_by_name_or_number(write_workload) -> None:
    entry = BASE.replace("APP", "http") + (
        "readiness:\n  http: {path: '/healthz?full=1', port: admin, status: 204}\n"
        "  period: 2\n  failure_threshold: 1\n"
    )
    probe = write_workload(entry).probe
    assert probe.spec(2200) == {
        "kind": "http",
        "timeout": 1,
        "uid": 2200,
        "port": 9000,
        "path": "/healthz?full=1",
        "status": 204,
    }
    assert (probe.period, probe.failure_threshold) == (2, 1)
    by_number = BASE.replace("APP", "http") + "readiness:\n  tcp: {port: 9000}\n"
    assert write_workload(by_number).probe.port == 9000
    exec_entry = BASE.replace("APP", "http") + "readiness:\n  exec: {command: [/bin/true]}\n"
    assert write_workload(exec_entry).probe.spec(2200)["command"] == ["/bin/true"]


@pytest.mark.parametrize(
    ("readiness", "message"),
    [
        (
            "{tcp: {port: 7000}}",
            r"readiness: port '?7000'? is not one of the entry's ports \(web=8080",
        ),
        ("{tcp: {port: nope}}", r"port 'nope' is not one of the entry's ports"),
        ("{tcp: {}, http: {}}", r"give one probe kind of http, grpc, tcp, exec"),
        ("{http: {path: 'x; rm -rf /'}}", r"readiness\.http\.path: .*not valid \(an absolute URL"),
        ('{http: {path: "/$(id) x"}}', r"readiness\.http\.path: .*not valid"),
        ("{exec: {command: []}}", r"command: give the program to run"),
        ("{tcp: {}, period: 0}", r"readiness\.period: 0 is out of range \(1-3600\)"),
        ("{tcp: {}, success_threshold: 6}", r"success_threshold: 6 is out of range \(1-5\)"),
        ("{grpc: {method: Check}}", r"readiness\.grpc\.method: 'Check' is not valid"),
    ],
)
def test_bad_probes_are_refused_with_the_fix(write_workload, readiness: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        write_workload(BASE.replace("APP", "http") + f"readiness: {readiness}\n")


def test_every_shipped_entry_declares_the_probe_that_fits_it() -> None:
    kinds = {name: find_workload(name).probe for name in ("smiley", "face", "color", "faces")}
    assert kinds["smiley"].describe() == "http GET / on port 8000 (200-399)"
    # face's answer waits on its backends: its readiness must not.
    assert kinds["face"].describe() == "tcp connect to port 8000"
    assert kinds["color"].describe() == "grpc /ColorService/Center on port 8000"
    # faces speaks HTTP or gRPC by FACES_SERVICE: only a connection fits both.
    assert kinds["faces"].kind == "tcp"
    # static-web serves no index page (GET / is 404): a connection.
    assert find_workload("static-web").probe.kind == "tcp"
    for name in ("smiley", "face", "color", "faces", "static-web"):
        assert find_workload(name).readiness is not None, f"{name} declares no readiness"


def test_the_image_carries_its_probe_as_label_file_and_health_check() -> None:
    workload = find_workload("color")
    files = render_files(workload, Settings())
    spec = json.loads(files["workload/readiness.json"][0])
    assert spec == {
        "kind": "grpc",
        "timeout": 1,
        "uid": workload.uid,
        "port": 8000,
        "method": "/ColorService/Center",
    }
    label = json.loads(readiness_label(workload))
    assert label == spec | workload.probe.timings
    dockerfile = files["Dockerfile"][0]
    assert (
        "HEALTHCHECK --interval=10s --timeout=2s --retries=3 \\\n"
        f'  CMD ["{image_contract.PROBE}", "{image_contract.READINESS_SPEC}"]'
    ) in dockerfile
    assert f"ln -s {image_contract.CERTCHECK} {image_contract.PROBE}" in dockerfile
    # Docker refuses --start-period=0s: it is given only for an initial delay.
    declared = workload.readiness or ProbeEntry()
    delayed = workload.model_copy(
        update={"readiness": declared.model_copy(update={"initial_delay": 5})}
    )
    assert (
        "--timeout=2s --start-period=5s --retries=3"
        in render_files(delayed, Settings())["Dockerfile"][0]
    )


def result(code: int, output: str) -> dict[str, object]:
    return {"ExitCode": code, "Output": output}


LABELS = {READINESS_LABEL: json.dumps({"success_threshold": 2})}


def test_the_keeper_reads_docker_health_with_the_probes_thresholds() -> None:
    assert probe_health(None, {}) is None  # an image without a probe: as before
    failed = probe_health(
        {"Status": "unhealthy", "Log": [result(1, "http GET /: 500 (want 200-399)\n")]}, LABELS
    )
    assert failed is not None
    assert (failed.ready, failed.reason, failed.message) == (
        False,
        "ProbeFailed",
        "http GET /: 500 (want 200-399)",
    )
    # Docker says healthy after one pass; the probe wants two in a row.
    once = {"Status": "healthy", "Log": [result(1, "x"), result(0, "http GET /: 200")]}
    started = probe_health(once, LABELS)
    assert started is not None
    assert (started.ready, started.reason) == (False, "ProbeStarting")
    assert "1 of 2 passes" in started.message
    twice = {"Status": "healthy", "Log": [result(0, "http GET /: 200")] * 2}
    ready = probe_health(twice, LABELS)
    assert ready is not None
    assert (ready.ready, ready.reason) == (True, "Ready")
    assert "http GET /: 200" in ready.message
    starting = probe_health({"Status": "starting", "Log": []}, {})
    assert starting is not None
    assert (starting.ready, starting.reason) == (False, "ProbeStarting")
