"""Certificates: the chain Linkerd and SPIRE need, safe file modes, no silent overwrite."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from builder.cluster.certs import create_certs
from builder.core.errors import CertsError


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_creates_anchor_and_issuer_with_linkerd_extensions(tmp_path: Path) -> None:
    result = create_certs(folder=tmp_path / "certs")
    anchor = _load(tmp_path / "certs/ca.crt")
    issuer = _load(tmp_path / "certs/issuer.crt")
    issuer.verify_directly_issued_by(anchor)  # raises if the issuer is not signed by the anchor
    assert isinstance(anchor.public_key(), ec.EllipticCurvePublicKey)
    assert anchor.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    for cert in (anchor, issuer):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical
        assert constraints.value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign
        assert usage.crl_sign
    # SPIRE's signing CA sits below the issuer: pathlen must allow one more CA.
    assert issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert result.anchor_key == tmp_path / "certs-anchor/ca.key"


def test_private_keys_are_0600_and_the_anchor_key_stays_out(tmp_path: Path) -> None:
    create_certs(folder=tmp_path / "certs")
    assert stat.S_IMODE((tmp_path / "certs/issuer.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs-anchor/ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs/ca.crt").stat().st_mode) == 0o644
    assert not (tmp_path / "certs/ca.key").exists()
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == [
        "ca.crt",
        "issuer.crt",
        "issuer.key",
    ]


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    create_certs(folder=tmp_path / "certs")
    before = (tmp_path / "certs/issuer.key").read_bytes()
    with pytest.raises(CertsError, match="already exist; add --force"):
        create_certs(folder=tmp_path / "certs")
    assert (tmp_path / "certs/issuer.key").read_bytes() == before
    create_certs(folder=tmp_path / "certs", force=True)
    assert (tmp_path / "certs/issuer.key").read_bytes() != before


def test_anchor_key_inside_the_mounted_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CertsError, match="keep the trust anchor's key out"):
        create_certs(folder=tmp_path / "certs", anchor_key=tmp_path / "certs/ca.key")
    assert not (tmp_path / "certs").exists()


def test_node_certificate_for_x509pop(tmp_path: Path) -> None:
    from builder.cluster.certs import create_node_cert

    create_certs(folder=tmp_path / "certs")
    folder = create_node_cert(certs=tmp_path / "certs", name="smiley", output=tmp_path / "node")
    chain = x509.load_pem_x509_certificates((folder / "node.crt").read_bytes())
    issuer = _load(tmp_path / "certs/issuer.crt")
    chain[0].verify_directly_issued_by(issuer)
    assert chain[1] == issuer
    assert chain[0].subject.rfc4514_string() == "CN=smiley"
    assert not chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE((folder / "node.key").stat().st_mode) == 0o600
    assert (folder / "ca.crt").read_bytes() == (tmp_path / "certs/ca.crt").read_bytes()


def test_node_certificate_needs_the_issuer(tmp_path: Path) -> None:
    from builder.cluster.certs import create_node_cert

    with pytest.raises(CertsError, match="create them with `meshexp-build certs`"):
        create_node_cert(certs=tmp_path, name="smiley", output=tmp_path / "node")
