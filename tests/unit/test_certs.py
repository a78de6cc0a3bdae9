"""Certificates: the chain Linkerd and SPIRE need, safe file modes, no silent overwrite."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from builder.cluster.certs import create_certs, rotate_certs
from builder.core.errors import CertsError
from builder.core.files import write_secret


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


@pytest.mark.parametrize("inside", ["private/ca.key", "a/b/ca.key"])
def test_anchor_key_in_a_subfolder_of_the_mounted_folder_is_refused(
    tmp_path: Path, inside: str
) -> None:
    with pytest.raises(CertsError, match="keep the trust anchor's key out of"):
        create_certs(folder=tmp_path / "certs", anchor_key=tmp_path / "certs" / inside)
    assert not (tmp_path / "certs").exists()  # nothing half-written


def test_anchor_key_reaching_the_mounted_folder_through_a_symlink_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "certs" / "private").mkdir(parents=True)
    (tmp_path / "elsewhere").symlink_to(tmp_path / "certs" / "private")
    with pytest.raises(CertsError, match="keep the trust anchor's key out of"):
        create_certs(folder=tmp_path / "certs", anchor_key=tmp_path / "elsewhere" / "ca.key")


def test_a_secret_file_has_its_mode_from_the_start_and_replaces_a_lax_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "tokens" / "smiley.token"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o644)  # an earlier run's file, readable by all
    modes_while_writing: list[int] = []
    real_fdopen = os.fdopen

    def watching_fdopen(descriptor: int, *args: object, **kwargs: object) -> object:
        modes_while_writing.append(stat.S_IMODE(os.fstat(descriptor).st_mode))
        return real_fdopen(descriptor, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", watching_fdopen)
    write_secret(target, b"new\n")
    assert modes_while_writing == [0o600]  # before the first byte
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in target.parent.iterdir()] == ["smiley.token"]  # no temporary left


def test_a_read_only_secret_for_another_user_is_never_readable_by_others(tmp_path: Path) -> None:
    """As the lab writes the issuer key for the controllers' UID (here: our own)."""
    path = write_secret(tmp_path / "issuer" / "key.pem", b"k", 0o400, owner=os.getuid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.stat().st_uid == os.getuid()


def _anchors(folder: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((folder / "ca.crt").read_bytes())


def test_a_trust_anchor_rotation_in_linkerds_order(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    [old] = _anchors(certs)
    old_issuer = _load(certs / "issuer.crt")
    old_key = (tmp_path / "certs-anchor/ca.key").read_bytes()

    bundle = rotate_certs(folder=certs, phase="bundle")
    first, new = _anchors(certs)
    assert first == old
    assert new != old
    assert _load(certs / "issuer.crt") == old_issuer  # the issuer stays for now
    assert stat.S_IMODE((tmp_path / "certs-anchor/next-ca.key").stat().st_mode) == 0o600
    assert len(bundle.anchors) == 2
    assert "--rotate issuer" in bundle.next_step

    rotate_certs(folder=certs, phase="issuer")
    issuer = _load(certs / "issuer.crt")
    issuer.verify_directly_issued_by(new)
    assert _anchors(certs) == [old, new]  # both still trusted
    assert stat.S_IMODE((certs / "issuer.key").stat().st_mode) == 0o600

    done = rotate_certs(folder=certs, phase="finish")
    assert _anchors(certs) == [new]
    assert (tmp_path / "certs-anchor/ca.key").read_bytes() != old_key
    assert not (tmp_path / "certs-anchor/next-ca.key").exists()
    assert done.removed == (
        tmp_path / "certs-anchor/next-ca.key",
        tmp_path / "certs-anchor/next-ca.crt",
    )
    # The kept anchor key is the new anchor's own.
    kept = serialization.load_pem_private_key((tmp_path / "certs-anchor/ca.key").read_bytes(), None)
    assert kept.public_key() == new.public_key()
    assert _load(certs / "issuer.crt") == issuer


@pytest.mark.parametrize(
    ("done", "phase", "message"),
    [
        ((), "issuer", "no rotation is under way; start one with --rotate bundle"),
        ((), "finish", "no rotation is under way"),
        (("bundle",), "bundle", "a rotation is under way"),
        (
            ("bundle",),
            "finish",
            "issuer.crt is not signed by the new anchor yet; run --rotate issuer",
        ),
        ((), "soon", "--rotate soon: choose one of bundle, issuer, finish"),
    ],
)
def test_a_phase_out_of_order_is_refused_and_changes_nothing(
    tmp_path: Path, done: tuple[str, ...], phase: str, message: str
) -> None:
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    for earlier in done:
        rotate_certs(folder=certs, phase=earlier)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    with pytest.raises(CertsError, match=re.escape(message)):
        rotate_certs(folder=certs, phase=phase)
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before


def test_node_cert_refuses_an_anchor_file_holding_a_key(tmp_path: Path) -> None:
    """ca.crt is copied into the folder containers mount: a key in it must never go."""
    from builder.cluster.certs import create_node_cert

    result = create_certs(folder=tmp_path / "certs")
    anchor = tmp_path / "certs" / "ca.crt"
    anchor.write_bytes(anchor.read_bytes() + result.anchor_key.read_bytes())
    with pytest.raises(CertsError, match=r"holds a .*PRIVATE KEY besides certificates"):
        create_node_cert(certs=tmp_path / "certs", name="smiley", output=tmp_path / "node")
    assert not (tmp_path / "node").exists()


def test_node_cert_copies_the_anchor_bundle_certificate_by_certificate(tmp_path: Path) -> None:
    from builder.cluster.certs import create_node_cert

    create_certs(folder=tmp_path / "certs")
    anchor = tmp_path / "certs" / "ca.crt"
    anchor.write_bytes(b"a comment line\n" + anchor.read_bytes())
    folder = create_node_cert(certs=tmp_path / "certs", name="smiley", output=tmp_path / "node")
    copied = (folder / "ca.crt").read_bytes()
    assert copied.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificates(copied) == x509.load_pem_x509_certificates(
        anchor.read_bytes()
    )


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("done", "said"),
    [
        ((), "no rotation under way"),
        (("bundle",), "bundle done"),
        (("bundle", "issuer"), "issuer done"),
        (("bundle", "issuer", "finish"), "no rotation under way"),
    ],
)
def test_rotate_status_says_where_a_rotation_stands_and_writes_nothing(
    tmp_path: Path, done: tuple[str, ...], said: str
) -> None:
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    for phase in done:
        rotate_certs(folder=certs, phase=phase)
    before = _files(tmp_path)
    status = rotate_certs(folder=certs, phase="status")
    assert said in status.next_step
    assert (status.written, status.removed) == ((), ())
    assert _files(tmp_path) == before


@pytest.mark.parametrize("key", ["missing", "corrupt", "sound"])
def test_abort_after_the_bundle_goes_back_to_the_old_anchor(tmp_path: Path, key: str) -> None:
    """Also when the new anchor's key is gone or broken: nothing signed by it is trusted
    by anyone yet, so dropping it leaves every certificate valid."""
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    [old] = _anchors(certs)
    issuer = (certs / "issuer.crt").read_bytes()
    rotate_certs(folder=certs, phase="bundle")
    next_key = tmp_path / "certs-anchor/next-ca.key"
    if key == "missing":
        next_key.unlink()
    elif key == "corrupt":
        next_key.write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nbroken\n")
    if key != "sound":
        with pytest.raises(
            CertsError, match=r"next-ca.key: the new anchor's key is .*--rotate abort"
        ):
            rotate_certs(folder=certs, phase="issuer")
        assert "NOT usable" in rotate_certs(folder=certs, phase="status").next_step
    back = rotate_certs(folder=certs, phase="abort")
    assert _anchors(certs) == [old]
    assert (certs / "issuer.crt").read_bytes() == issuer
    assert not next_key.exists()
    assert not (tmp_path / "certs-anchor/next-ca.crt").exists()
    assert "old anchor alone" in back.next_step
    rotate_certs(folder=certs, phase="bundle")  # and a rotation can start again


def test_abort_after_the_issuer_moved_is_refused_and_finish_needs_the_key(
    tmp_path: Path,
) -> None:
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    rotate_certs(folder=certs, phase="bundle")
    rotate_certs(folder=certs, phase="issuer")
    before = _files(tmp_path)
    with pytest.raises(CertsError, match="go on with --rotate finish"):
        rotate_certs(folder=certs, phase="abort")
    (tmp_path / "certs-anchor/next-ca.key").unlink()
    with pytest.raises(CertsError, match="is missing; restore it from a backup"):
        rotate_certs(folder=certs, phase="finish")
    assert _files(tmp_path) == {k: v for k, v in before.items() if k.name != "next-ca.key"}


def test_certs_force_in_the_middle_of_a_rotation_is_refused(tmp_path: Path) -> None:
    """--force would replace the anchor that every workload trusts, and leave the
    rotation's files pointing at an anchor no longer in ca.crt."""
    certs = tmp_path / "certs"
    create_certs(folder=certs)
    rotate_certs(folder=certs, phase="bundle")
    before = _files(tmp_path)
    with pytest.raises(CertsError, match=r"rotation is under way.*--rotate status"):
        create_certs(folder=certs, force=True)
    assert _files(tmp_path) == before


def test_certs_in_the_current_folder_keep_the_anchor_key_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    result = create_certs(folder=Path())
    assert result.anchor_key == tmp_path / "here-anchor" / "ca.key"
    with pytest.raises(CertsError, match="not /"):
        create_certs(folder=Path("/"))
