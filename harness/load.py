"""A steady load through the mesh, and what rotates underneath it: for the rotation and
restart tests and the soak bench (bench/soak.py).

face is called at a fixed rate; face calls smiley and color through its proxy, over
mTLS. An answer counts as a success only when it is a 200 with no error from either
and a healthy smiley and color (builder.check.answers.face_trouble). What rotated is
read from the real parts: the proxy's own identity metrics, and the SVID the SPIRE
agent serves to the proxy's UID.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from builder.check.answers import face_trouble
from builder.check.listings import metric_series
from builder.config.settings import Settings
from builder.engine import docker_engine
from harness import faces

RATE = 5.0  # calls a second: the rate of the measurements
AGENT_SOCKET = "/run/spire/agent/public/api.sock"


@dataclass
class LoadFigures:
    """What a load saw: its length, calls, failures and the longest time without a
    successful answer (from the start, between answers, and up to the end)."""

    seconds: float
    requests: int
    failures: list[str]
    longest_gap: float

    def row(self) -> dict[str, float | int]:
        return {
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "failures": len(self.failures),
            "longest_gap_s": round(self.longest_gap, 2),
        }


@dataclass
class SteadyLoad:
    """Calls face's /center/ at `rate` a second, round robin over `targets()` (the
    face instances that should answer now), until stopped. Bounded by `limit` seconds
    whatever happens."""

    targets: Callable[[], Sequence[str]]
    rate: float = RATE
    limit: float = 1200.0
    # The clock and the wait between calls (the stop event's): tests run it on a fake one.
    clock: Callable[[], float] = time.monotonic
    pause: Callable[[float], object] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _figures: LoadFigures | None = None

    def __enter__(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> LoadFigures:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        assert self._figures is not None, "the load never ran"
        return self._figures

    def _run(self) -> None:
        began = self.clock()
        last_success, longest, requests, turn = began, 0.0, 0, 0
        failures: list[str] = []
        due = began
        while not self._stop.is_set() and self.clock() - began < self.limit:
            targets = list(self.targets())
            if targets:
                ip = targets[turn % len(targets)]
                turn += 1
                requests += 1
                problem = call_face(ip)
                now = self.clock()
                if problem is None:
                    longest = max(longest, now - last_success)
                    last_success = now
                else:
                    failures.append(f"{ip}: {problem}")
            # The next call is due one interval on; never a burst to catch up after a slow one.
            due = max(due + 1 / self.rate, self.clock())
            (self.pause or self._stop.wait)(max(0.0, due - self.clock()))
        end = self.clock()
        longest = max(longest, end - last_success)
        self._figures = LoadFigures(end - began, requests, failures, longest)


def call_face(ip: str) -> str | None:
    """One call to face; None when it is a healthy answer, else what was wrong."""
    try:
        answer = faces.http_call(ip, "GET", "/center/", {"X-Faces-User": "mesh"})
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    body = json.dumps(answer["body"])
    if answer["status"] != 200:
        return f"{answer['status']}: {body[:200]}"
    trouble = face_trouble([body])
    return trouble[0][:200] if trouble else None


def identity_refreshes(ip: str) -> int:
    """How many times the proxy at `ip` has installed a new identity certificate (its
    own counter, control_identity_cert_refreshes_total{result="ok"})."""
    with urllib.request.urlopen(f"http://{ip}:4191/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        int(value)
        for labels, value in metric_series(text, "control_identity_cert_refreshes_total")
        if labels.get("result") == "ok"
    )


def served_chain(container: str, settings: Settings) -> list[x509.Certificate]:
    """The X.509-SVID chain (leaf first) the container's SPIRE agent serves to the proxy's
    UID now, as the proxy asks for it: the Workload API, as that UID."""
    code, out = docker_engine.exec_in(
        container,
        ["spire-agent", "api", "fetch", "x509", "-socketPath", AGENT_SOCKET, "-output", "json"],
        user=f"{settings.proxy_uid}:{settings.proxy_uid}",
    )
    assert code == 0, f"spire-agent api fetch in {container}: {out[-500:]}"
    blob = base64.b64decode(json.loads(out)["svids"][0]["x509_svid"])
    chain = []
    while blob:
        size = der_length(blob)
        chain.append(x509.load_der_x509_certificate(blob[:size]))
        blob = blob[size:]
    return chain


def served_svid(container: str, settings: Settings) -> x509.Certificate:
    """The leaf of `served_chain`."""
    return served_chain(container, settings)[0]


def der_length(blob: bytes) -> int:
    """The length of the first DER element of `blob` (a certificate of a chain)."""
    if blob[1] < 0x80:
        return 2 + blob[1]
    size = blob[1] & 0x7F
    return 2 + size + int.from_bytes(blob[2 : 2 + size], "big")


def signing_ca(certificate: x509.Certificate) -> str:
    """The key ID of the CA that signed `certificate` (its authority key identifier)."""
    ext = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert ext.value.key_identifier is not None
    return ext.value.key_identifier.hex()
