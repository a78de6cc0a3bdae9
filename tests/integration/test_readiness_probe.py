"""The image's readiness probe in real containers: smiley built with the real program and
started three ways (healthy, answering 500, hanging). Docker's health check runs the
image's own probe, the bootstrap says "workload ready" only for the healthy one, and the
keeper's Ready follows the probe within its thresholds, with the probe's answer."""

from __future__ import annotations

import contextlib
import json
import time

from builder.cluster.keeper import Target, probe
from builder.core import image_contract
from builder.engine import containers, docker_engine

READY = "bootstrap: workload ready (http GET /: 200)"


def health(box: containers.MeshContainer) -> dict[str, object]:
    return docker_engine.inspect_if_exists(box.id)["State"].get("Health") or {}


def wait_for_health(box: containers.MeshContainer, wanted: str, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if health(box).get("Status") == wanted:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{box.id[:12]} not {wanted} within {limit:.0f}s: {health(box)}")


def test_the_probe_decides_ready_and_says_why(smiley_image, network, certs) -> None:
    spec = json.loads(smiley_image.labels["io.meshexp.readiness"])
    assert spec["kind"] == "http"
    # Docker marks unhealthy after failure_threshold failures, one per period; slack for
    # a loaded machine.
    limit = spec["period"] * (spec["failure_threshold"] + 1) + 30
    variants = {
        "healthy": {},
        "failing": {"ERROR_FRACTION": "100"},  # smiley answers 500 to every request
        "hanging": {"DELAY_BUCKETS": "5000"},  # every answer takes 5 s; the probe 1 s
    }
    with contextlib.ExitStack() as stack:
        boxes = {
            name: stack.enter_context(
                containers.mesh_container(
                    image=smiley_image.reference,
                    network=network,
                    certs=certs,
                    env=env,
                    name=f"{network}-{name}",
                )
            )
            for name, env in variants.items()
        }
        wait_for_health(boxes["healthy"], "healthy", limit)
        for name in ("failing", "hanging"):
            wait_for_health(boxes[name], "unhealthy", limit)
        said = {name: probe(Target(box.id, name, "faces", 8000)) for name, box in boxes.items()}
        assert (said["healthy"].ready, said["healthy"].reason) == (True, "Ready")
        assert "http GET /: 200" in said["healthy"].message
        assert (said["failing"].ready, said["failing"].reason) == (False, "ProbeFailed")
        assert "http GET /: 500 (want 200-399)" in said["failing"].message
        assert (said["hanging"].ready, said["hanging"].reason) == (False, "ProbeFailed")
        assert "timed out" in said["hanging"].message
        logs = {name: box.logs() for name, box in boxes.items()}
        assert READY in logs["healthy"]
        for name in ("failing", "hanging"):
            assert "bootstrap: workload ready" not in logs[name]
            assert "bootstrap: WARNING: workload not ready yet: http GET /" in logs[name]
        # The same probe, run by hand in the container, gives the same answer.
        code, output = boxes["healthy"].exec([image_contract.PROBE])
        assert (code, output.strip()) == (0, "http GET /: 200")
