"""The trust anchor rotated end to end in the mesh lab while face answers, as the README's
"Rotation" gives it: `certs --rotate bundle|issuer|finish`, each followed by `lab certs`
(the control plane) and a restart of each workload, one at a time.

Two instances of each workload (smiley, color, face), started by the walk-through's
`docker run` line and registered by `register` behind one Service each, keep each
Service answering while one of them restarts. The load goes to the face instances in
service, as a Service would send it: a face instance is taken out before its restart
and put back once it is Ready again. With the real control plane and the real proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from lightkube.resources.core_v1 import ConfigMap

from builder.build.image import build_workload_image
from builder.cluster import kube
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab
from harness.load import SteadyLoad, served_chain
from harness.rotation import INSTANCES, face_ip, remove_pairs, rotate_trust_anchor, start_pairs

pytestmark = pytest.mark.mesh
OWNER_ID = "trust-rotation-test"
LONGEST_GAP = 10.0  # seconds without a healthy answer at most (a loaded 2-core machine)


@pytest.fixture(scope="module")
def instances(engine: Any, lab: Lab, mesh_settings: Settings) -> Iterator[Any]:
    images = {
        name: build_workload_image(workload=find_workload(name), settings=mesh_settings).reference
        for name in ("smiley", "color", "face")
    }
    try:
        running = start_pairs(engine, lab, images, OWNER_ID)
        yield running
        running.end()
    finally:
        remove_pairs()


def test_the_trust_anchor_rotates_end_to_end_and_no_call_fails(
    lab: Lab, instances: Any, mesh_settings: Settings
) -> None:
    certs = lab.folder / "certs"
    [old_anchor] = x509.load_pem_x509_certificates((certs / "ca.crt").read_bytes())
    serving = {name: face_ip(lab, name) for name in INSTANCES if name.startswith("face-")}
    phases: list[str] = []
    with SteadyLoad(lambda: sorted(serving.values())) as load:
        rotate_trust_anchor(lab, serving, lambda phase, _: phases.append(phase))
        figures = load.stop()
    assert phases == ["bundle", "issuer", "finish"]
    assert figures.failures == [], figures.failures[:5]
    assert figures.requests >= figures.seconds * 2  # the load really ran (5 a second)
    assert figures.longest_gap < LONGEST_GAP, figures

    [new_anchor] = x509.load_pem_x509_certificates((certs / "ca.crt").read_bytes())
    assert new_anchor.public_key() != old_anchor.public_key()
    issuer = x509.load_pem_x509_certificate((certs / "issuer.crt").read_bytes())
    issuer.verify_directly_issued_by(new_anchor)
    for name in INSTANCES:
        # What its proxy trusts: the new anchor alone.
        code, anchors = docker_engine.exec_in(name, ["cat", "/run/meshexp/trust-anchors.pem"])
        assert code == 0, anchors
        trusted = x509.load_pem_x509_certificates(anchors.encode())
        assert [a.serial_number for a in trusted] == [new_anchor.serial_number]
        # What it presents: an SVID under SPIRE's CA, which the new issuer signed.
        served_chain(name, mesh_settings)[1].verify_directly_issued_by(issuer)
    roots = kube.connect(lab.kubeconfig).get(
        ConfigMap, "linkerd-identity-trust-roots", namespace="linkerd"
    )
    assert roots.data is not None
    bundle = x509.load_pem_x509_certificates(roots.data["ca-bundle.crt"].encode())
    assert [a.serial_number for a in bundle] == [new_anchor.serial_number]
