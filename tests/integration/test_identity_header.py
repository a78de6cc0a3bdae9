"""What an application behind the proxy learns of its caller: the fact that
registration by identity (issue 35) builds on, read from the real proxy.

Two instances of a Python service (its GET /headers answers with the headers it was
sent) run in the mesh lab as ExternalWorkloads. One calls the other through the
mesh, sending an `l5d-client-id` header of its own; a container outside the mesh
calls it in plaintext with the same claim. What the service receives is what a
registration service behind its own proxy could believe.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from builder.build.from_image import settle
from builder.build.image import build_workload_image
from builder.cluster.run import stop_workload
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.config.types import parse
from builder.core.errors import CatalogError
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.lab import Lab, run_in_lab
from harness import apps

pytestmark = pytest.mark.mesh
CLAIM = "spiffe://evil.example/claimed"
CALL = (
    "import urllib.request, sys;"
    "r = urllib.request.Request(sys.argv[1], headers={'l5d-client-id': sys.argv[2]});"
    "print(urllib.request.urlopen(r, timeout=20).read().decode())"
)


def headers_seen(container: str, url: str, user: str | None = None) -> list[list[str]]:
    code, output = docker_engine.exec_in(container, ["python3", "-c", CALL, url, CLAIM], user=user)
    assert code == 0, output
    return json.loads(output.strip().splitlines()[-1])


def test_the_inbound_proxy_names_a_meshed_caller_and_drops_any_claim(
    engine, lab: Lab, mesh_settings: Settings, real_faces: dict[str, Path], tmp_path: Path
) -> None:
    with apps.applications(real_faces["smiley"], tmp_path, "hdr", ("python",)) as made:
        document = {
            "name": "echo",
            "namespace": "faces",
            "from": {"image": made["python"]},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "app_protocol": "http"}],
        }
        workload = parse(Workload, document, "test:", CatalogError, {"where": "test:"})
        workload = settle(workload, mesh_settings, Progress())
        built = build_workload_image(workload=workload, settings=mesh_settings)
        names = {"echo": "meshexp-echo", "echo-client": "meshexp-echo-client"}
        with tempfile.TemporaryDirectory() as manifests:
            try:
                for as_name, container in names.items():
                    run_in_lab(
                        lab=lab,
                        workload=workload,
                        settings=mesh_settings,
                        manifests_dir=Path(manifests),
                        image=built.reference,
                        name=container,
                        env={"WORKLOAD_NAME": as_name},
                    )
                meshed = headers_seen(
                    names["echo-client"], "http://echo.faces.svc.cluster.local:8080/headers", "1000"
                )
                server_ip = docker_engine.container_ip(names["echo"], lab.network)
                plain_name = "meshexp-echo-plain"
                docker_engine.remove_container(plain_name)
                engine.containers.run(
                    made["python"], name=plain_name, detach=True, network=lab.network
                )
                plain = headers_seen(plain_name, f"http://{server_ip}:8080/headers")
                # Through the mesh: the caller's own claim is gone, and the proxy names
                # the caller by the SPIFFE ID of its SVID, once.
                wanted = mesh_settings.identity_of("faces", "echo-client").spiffe_id
                assert [v for k, v in meshed if k == "l5d-client-id"] == [wanted], meshed
                # In plaintext, from outside the mesh: the claim is dropped, and nothing
                # names the caller.
                assert [v for k, v in plain if k == "l5d-client-id"] == [], plain
            finally:
                docker_engine.remove_container("meshexp-echo-plain")
                for container in names.values():
                    stop_workload(
                        name=container, manifests_dir=Path(manifests), kubeconfig=lab.kubeconfig
                    )
                docker_engine.remove_image(built.reference)
