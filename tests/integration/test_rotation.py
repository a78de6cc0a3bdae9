"""Rotation under load, in the mesh lab: SVIDs and the SPIRE server's own CA rotate many
times while face calls smiley and color over mTLS, and no call fails.

The three workloads are our images with the real proxy and upstream's Faces programs,
started with short lifetimes (SPIRE_SVID_TTL, SPIRE_CA_TTL; README, "Rotation"). The
rotations are counted from the real parts, not assumed: the proxy's own refresh
counter, and the CA that signed the SVID its SPIRE agent serves it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from builder.config.settings import Settings
from builder.lab import Lab
from harness.lab import into_lab
from harness.load import SteadyLoad, identity_refreshes, served_svid, signing_ca
from harness.rotation import FACE_ENV

pytestmark = pytest.mark.mesh
SVID_TTL = "30s"  # renewed about every 15 s
CA_TTL = "3m"  # SPIRE's minimum for a 30 s SVID (6 times); the next CA is active by 2.5 min
SVID_ROTATIONS = 3  # at least, in each proxy
LIMIT = 330.0  # seconds: the CA's first rotation and the SVIDs it signs, with room
LONGEST_GAP = 10.0  # seconds without a healthy answer at most (a loaded 2-core machine)


@pytest.fixture(scope="module")
def short_lived(lab: Lab, mesh_settings: Settings) -> dict[str, Any]:
    """smiley, color and face in the lab, each with a 30 s SVID and a 3 min SPIRE CA."""
    started = {}
    for name in ("smiley", "color", "face"):
        env = {"SPIRE_SVID_TTL": SVID_TTL, "SPIRE_CA_TTL": CA_TTL}
        env |= FACE_ENV if name == "face" else {}
        started[name] = into_lab(lab, mesh_settings, name, f"{lab.name}-rot-{name}", env=env)
    return started


def test_svids_and_the_spire_ca_rotate_under_load_and_no_call_fails(
    short_lived: dict[str, Any], mesh_settings: Settings
) -> None:
    first = {name: identity_refreshes(run.ip) for name, run in short_lived.items()}
    cas = {
        name: {signing_ca(served_svid(run.name, mesh_settings))}
        for name, run in short_lived.items()
    }
    refreshed = dict.fromkeys(short_lived, 0)
    began = time.monotonic()
    with SteadyLoad(lambda: [short_lived["face"].ip]) as load:
        while time.monotonic() - began < LIMIT:
            for name, run in short_lived.items():
                refreshed[name] = identity_refreshes(run.ip) - first[name]
                cas[name].add(signing_ca(served_svid(run.name, mesh_settings)))
            if all(n >= SVID_ROTATIONS for n in refreshed.values()) and all(
                len(seen) >= 2 for seen in cas.values()
            ):
                break
            time.sleep(5)
        time.sleep(3)  # calls through the SVIDs of the new CA
        figures = load.stop()
    assert all(n >= SVID_ROTATIONS for n in refreshed.values()), refreshed
    assert all(len(seen) >= 2 for seen in cas.values()), cas  # a new CA signs
    assert figures.failures == [], figures.failures[:5]
    assert figures.requests >= figures.seconds * 2  # the load really ran (5 a second)
    assert figures.longest_gap < LONGEST_GAP, figures
