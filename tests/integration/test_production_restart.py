"""The production topology's external SPIRE server restarted while traffic flows, in the
mesh lab: smiley is an agent-only image whose agent joined `spire-server start`'s server
(signing with the lab's issuer); color and face are demo images. face keeps answering
over mTLS through the restart, and afterwards smiley's agent is still attested and still
served: the server kept its datastore (the agents and entries it knows).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab
from harness import faces
from harness.load import SteadyLoad, served_chain
from harness.rotation import agents_known, production_trio, spire_server_healthy

pytestmark = pytest.mark.mesh
READY_AGAIN = 60.0  # seconds for the restarted server to pass its health check
LONGEST_GAP = 10.0


@pytest.fixture(scope="module")
def prod_settings(mesh_settings: Settings) -> Settings:
    return mesh_settings.with_(
        topology="production", image_name="meshexp-test-mesh/prod-{workload}"
    ).check()


@pytest.fixture(scope="module")
def mixed(
    lab: Lab, mesh_settings: Settings, prod_settings: Settings, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    try:
        yield production_trio(lab, mesh_settings, prod_settings, tmp_path_factory.mktemp("prod"))
    finally:
        docker_engine.remove_container(f"{lab.name}-spire")


def agent_ids(listing: str) -> list[str]:
    return re.findall(r"SPIFFE ID\s*: (\S+)", listing)


def test_the_external_spire_server_restarts_while_traffic_flows(
    mixed: dict[str, Any], prod_settings: Settings, mesh_settings: Settings
) -> None:
    server, smiley = mixed["server"], mixed["smiley"]
    [agent] = agent_ids(agents_known(server, prod_settings))  # smiley's, by join token
    with SteadyLoad(lambda: [mixed["face"].ip]) as load:
        time.sleep(2)  # answers before the restart: the gap is measured from a steady start
        began = time.monotonic()
        docker_engine.restart_container(server)
        assert faces.wait_for(lambda: spire_server_healthy(server, prod_settings), READY_AGAIN)
        ready_after = time.monotonic() - began
        time.sleep(10)  # the agent's next sync with the server, under load
        figures = load.stop()
    assert figures.failures == [], figures.failures[:5]
    assert figures.longest_gap < LONGEST_GAP, figures
    assert ready_after < READY_AGAIN
    # The server came back knowing its agent: not a fresh, empty datastore.
    assert agent_ids(agents_known(server, prod_settings)) == [agent]
    # smiley's agent still runs and still serves the proxy its SVID.
    assert docker_engine.container_state(smiley.name).get("Running")
    leaf = served_chain(smiley.name, prod_settings)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ids = names.get_values_for_type(x509.UniformResourceIdentifier)
    assert ids == [prod_settings.identity_of("faces", "smiley").spiffe_id]
    # Nor did its agent complain since but of the server being away while it restarted
    # (its warnings and errors reach the container log): never refused, never unknown.
    since = docker_engine.container_logs(smiley.name).split("workload ready")[-1]
    errors = [line for line in since.splitlines() if "level=error" in line or "ERROR" in line]
    away = [line for line in errors if "connect: connection refused" in line]
    assert errors == away, errors
