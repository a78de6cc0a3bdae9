"""Bad input and faults: each ends with a non-zero exit, in stated time, with one clear line.

Stated times (README): bad input exits before anything starts, within 15 s;
a dead child stops the container within 15 s; `docker stop` takes under 10 s.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from builder.build.image import build_workload_image
from builder.check.live import wait_ready
from builder.cluster.certs import create_certs
from builder.config.catalog import load_workload_file
from builder.core import image_contract
from builder.engine import containers

INPUT_LIMIT = 15.0
DEATH_LIMIT = 15.0


def run_bad(
    image: str,
    network: str,
    certs: Path | None,
    env: dict[str, str] | None = None,
    caps: tuple[str, ...] = ("NET_ADMIN", "NET_RAW"),
) -> tuple[int, str, float]:
    code, logs, seconds = containers.run_to_exit(
        image=image, network=network, certs=certs, env=env or {}, caps=caps, timeout=60
    )
    assert "traffic capture installed" not in logs, "bad input must stop before any change"
    return code, logs, seconds


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WORKLOAD_NAME": "smiley; rm -rf /"},
            "WORKLOAD_NAME=smiley\\;\\ rm\\ -rf\\ / is not a DNS-1123 label",
        ),
        ({"WORKLOAD_NAME": "$(id)"}, "WORKLOAD_NAME=\\$\\(id\\) is not a DNS-1123 label"),
        ({"WORKLOAD_NAMESPACE": "Faces"}, "WORKLOAD_NAMESPACE=Faces is not a DNS-1123 label"),
        ({"NODE_NAME": "edge\n1"}, "NODE_NAME must be 1-253 characters without control"),
        ({"MESHEXP_READY_TIMEOUT": "soon"}, "MESHEXP_READY_TIMEOUT=soon must be a whole number"),
        ({"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": "allow"}, "is not one of: deny"),
        (
            {"MESHEXP_REGISTRAR": "registrar:8080/$(id)"},
            "MESHEXP_REGISTRAR=registrar:8080/\\$\\(id\\) is not HOST:PORT",
        ),
        ({"MESHEXP_REGISTRAR": "registrar:99999"}, "MESHEXP_REGISTRAR=registrar:99999 is not"),
        (
            {"MESHEXP_REGISTRAR": "registrar:8080", "MESHEXP_GROUP": "Echoes"},
            "MESHEXP_GROUP=Echoes is not a DNS-1123 label",
        ),
        ({"SPIRE_SVID_TTL": "1h$(id)"}, "SPIRE_SVID_TTL=1h\\$\\(id\\) is not a duration"),
        ({"SPIRE_CA_TTL": "1d"}, "SPIRE_CA_TTL=1d is not a duration such as 10m"),
        ({"SPIRE_SVID_TTL": "10s"}, "SPIRE_SVID_TTL=10s is under 30s"),
        (
            {"SPIRE_SVID_TTL": "1m", "SPIRE_CA_TTL": "5m"},
            "SPIRE_CA_TTL=5m is under 6 times SPIRE_SVID_TTL=1m, so SPIRE would cut SVIDs "
            "short at CA rotations; set SPIRE_CA_TTL to 360s or more",
        ),
    ],
)
def test_bad_variables(smiley_image, network, certs, env, message) -> None:
    code, logs, seconds = run_bad(smiley_image.reference, network, certs, env)
    assert code == 64
    assert seconds < INPUT_LIMIT
    assert message in logs
    assert "nothing was started or changed" in logs


def test_faces_service_is_checked(build, network, certs) -> None:
    code, logs, _ = run_bad(build("faces").reference, network, certs, {"FACES_SERVICE": "face"})
    assert code == 64
    assert "FACES_SERVICE=face is not one of: smiley color" in logs


def test_without_net_admin(smiley_image, network, certs) -> None:
    code, logs, _ = run_bad(smiley_image.reference, network, certs, caps=())
    assert code == 64
    assert "lacks NET_ADMIN" in logs
    assert "--cap-add NET_ADMIN" in logs


def test_certificates_missing(smiley_image, network, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, logs, _ = run_bad(smiley_image.reference, network, empty)
    assert code == 64
    assert "no signing CA in /opt/spire/certs" in logs


def _sign(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    signer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    days: tuple[int, int],
) -> bytes:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("fault", ["expired", "mismatch", "foreign-issuer", "not-pem"])
def test_bad_certificates(smiley_image, network, tmp_path: Path, fault: str) -> None:
    folder = tmp_path / "certs"
    create_certs(folder=folder)
    anchor = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    other = ec.generate_private_key(ec.SECP256R1())
    if fault == "expired":
        anchor_key = serialization.load_pem_private_key(
            (tmp_path / "certs-anchor/ca.key").read_bytes(), None
        )
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        (folder / "issuer.crt").write_bytes(
            _sign(
                "identity.linkerd.cluster.local", issuer_key, anchor_key, anchor.subject, (-30, -1)
            )
        )
        (folder / "issuer.key").write_bytes(_key_pem(issuer_key))
        expected = "issuer.crt: expired on"
    elif fault == "mismatch":
        (folder / "issuer.key").write_bytes(_key_pem(other))
        expected = "issuer.key: does not match /opt/spire/certs/issuer.crt"
    elif fault == "foreign-issuer":
        (folder / "issuer.crt").write_bytes(_sign("identity", other, other, None, (-1, 30)))
        (folder / "issuer.key").write_bytes(_key_pem(other))
        expected = "issuer.crt: not signed by the trust anchor"
    else:
        (folder / "ca.crt").write_text("not a certificate\n")
        expected = "ca.crt: not a PEM certificate"
    code, logs, _ = run_bad(smiley_image.reference, network, folder)
    assert code == 64
    assert expected in logs


def _pid_of(box: containers.MeshContainer, command: str) -> str:
    script = (
        f'for p in /proc/[0-9]*; do c=$(tr "\\0" " " <"$p/cmdline" 2>/dev/null) || continue; '
        f'case "$c" in "{command}"*) echo "${{p#/proc/}}"; exit 0;; esac; done; exit 1'
    )
    code, out = box.exec(["bash", "-c", script])
    assert code == 0, f"no process {command}: {out}"
    return out.strip()


def _exit_after_kill(box: containers.MeshContainer, command: str) -> tuple[int, float, str]:
    pid = _pid_of(box, command)
    start = time.monotonic()
    code, out = box.exec(["bash", "-c", f"kill -KILL {pid}"])
    assert code == 0, out
    code = box.wait_for_exit(timeout=60)
    return code, time.monotonic() - start, box.logs()


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("/opt/workload/bin/smiley", "workload smiley"),
        (image_contract.PROXY, "linkerd-proxy"),
        ("spire-agent run", "spire-agent"),
        ("spire-server run", "spire-server"),
    ],
)
def test_a_dead_child_stops_the_container(smiley_image, network, certs, command, name) -> None:
    with containers.mesh_container(
        image=smiley_image.reference, network=network, certs=certs, env={}
    ) as box:
        code, seconds, logs = _exit_after_kill(box, command)
    assert code != 0
    assert seconds < DEATH_LIMIT
    assert f"bootstrap: ERROR: {name} exited with code" in logs


CRASHER = """\
name: crasher
namespace: faults
ports: [{name: http, port: 8080}]
user: {name: workload, uid: 2300}
debian: {packages: [busybox]}
command: [/bin/busybox, sh, -c, "echo 'crasher: no config here' >&2; exit 3"]
"""


def test_workload_that_fails_at_start(
    engine, offline_settings, network, certs, tmp_path: Path
) -> None:
    """Faces, like upstream, never fails on its settings; this workload exits at once."""
    entry = tmp_path / "catalog" / "crasher.yaml"
    entry.parent.mkdir()
    entry.write_text(CRASHER)
    image = build_workload_image(workload=load_workload_file(entry), settings=offline_settings)
    code, logs, seconds = containers.run_to_exit(
        image=image.reference, network=network, certs=certs, env={}, timeout=90
    )
    assert code != 0
    assert "crasher: no config here" in logs
    assert "bootstrap: ERROR: workload crasher exited" in logs
    assert seconds < 60


def test_restart_comes_back_ready(smiley_image, network, certs) -> None:
    with containers.mesh_container(
        image=smiley_image.reference, network=network, certs=certs, env={}
    ) as box:
        box.restart(timeout=120)
        detail = wait_ready(box, 60)
        logs = box.logs()
    assert "/ready answered 200" in detail
    assert logs.count("traffic capture installed") == 2
    assert "received SIGTERM" in logs
