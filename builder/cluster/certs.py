"""`meshexp-build certs`: a trust anchor and an identity issuer for Linkerd and SPIRE.

ECDSA P-256, with the extensions `linkerd install --identity-trust-anchors-file
... --identity-issuer-certificate-file ... --identity-issuer-key-file ...`
accepts. The issuer allows one more CA below it (pathlen 1) because SPIRE's
own signing CA sits there. The trust anchor's key is written apart from the
folder that containers mount, so mounting that folder never hands it out. One module
of over 400 lines: creation and each phase of a rotation read and write the same
files with the same modes, and are checked together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from builder.core.errors import CertsError
from builder.core.files import write_files

ANCHOR_CN = "root.linkerd.cluster.local"
ISSUER_CN = "identity.linkerd.cluster.local"


@dataclass(frozen=True)
class CertsResult:
    folder: Path
    anchor_key: Path
    written: tuple[Path, ...]
    anchor_not_after: dt.datetime
    issuer_not_after: dt.datetime


def _ca(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer_cert.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_certs(
    *,
    folder: Path,
    anchor_key: Path | None = None,
    force: bool = False,
    anchor_days: int = 3650,
    issuer_days: int = 365,
) -> CertsResult:
    """Create ca.crt, issuer.crt and issuer.key in `folder`, and the anchor key apart.
    Never in the middle of a rotation: that would replace the anchor everything trusts."""
    anchor_key = _anchor_key(folder, anchor_key)
    pending = [path for path in _next_files(anchor_key) if path.exists()]
    if pending:
        raise CertsError(
            f"{folder}: a trust-anchor rotation is under way ({pending[0]} is there); finish "
            "it or go back (`certs --rotate status` says how) before creating new certificates"
        )
    targets = {
        folder / "ca.crt": 0o644,
        folder / "issuer.crt": 0o644,
        folder / "issuer.key": 0o600,
        anchor_key: 0o600,
    }
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise CertsError(
            f"{', '.join(existing)} already exist; add --force to replace them "
            "(a new trust anchor means reinstalling Linkerd's identity)"
        )
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca(ANCHOR_CN, root_key, None, anchor_days, None)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca(ISSUER_CN, issuer_key, (root, root_key), issuer_days, 1)
    write_files(
        {
            folder / "ca.crt": (_pem_cert(root), 0o644),
            folder / "issuer.crt": (_pem_cert(issuer), 0o644),
            folder / "issuer.key": (_pem_key(issuer_key), 0o600),
            anchor_key: (_pem_key(root_key), 0o600),
        }
    )
    return CertsResult(
        folder=folder,
        anchor_key=anchor_key,
        written=tuple(targets),
        anchor_not_after=root.not_valid_after_utc,
        issuer_not_after=issuer.not_valid_after_utc,
    )


def _anchor_key(folder: Path, anchor_key: Path | None) -> Path:
    """Where the trust anchor's key is kept: never under the folder containers mount
    (a subfolder, or through a symlink, is inside it too)."""
    if anchor_key is None:
        named = folder.resolve()
        if not named.name:
            raise CertsError(f"{folder}: choose a folder of its own for the certificates, not /")
        anchor_key = named.with_name(named.name + "-anchor") / "ca.key"
    if not anchor_key.name or anchor_key.name in (".", ".."):
        raise CertsError(f"--anchor-key {str(anchor_key)!r}: give the path of a file")
    if anchor_key.resolve().is_relative_to(folder.resolve()):
        raise CertsError(
            f"{anchor_key}: keep the trust anchor's key out of {folder}, the folder "
            "containers mount; choose another --anchor-key path"
        )
    return anchor_key


# A trust-anchor rotation, in Linkerd's order (its "rotating the trust root" guide):
# trust both anchors everywhere, move the issuer to the new one, drop the old one.
# Between two phases every proxy restarts onto the new files, one at a time.
ROTATION_PHASES = ("bundle", "issuer", "finish")
# Not phases: where a rotation stands (read only), and the way back before the issuer moved.
ROTATION_COMMANDS = (*ROTATION_PHASES, "status", "abort")
NEXT_STEP = {
    "bundle": "restart the control plane and each workload, one at a time, onto the bundle; "
    "then --rotate issuer",
    "issuer": "restart the control plane and each workload, one at a time, so that they "
    "sign with the new issuer; then --rotate finish",
    "finish": "restart the control plane and each workload, one at a time: the old anchor "
    "is trusted no more once all have restarted",
    "abort": "restart the control plane and each workload, one at a time, onto the old "
    "anchor alone; a rotation can start again with --rotate bundle",
}


@dataclass(frozen=True)
class RotationResult:
    phase: str
    folder: Path
    written: tuple[Path, ...]
    removed: tuple[Path, ...]
    anchors: tuple[str, ...]  # the subjects and serials ca.crt now holds
    next_step: str


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertsError(
            f"{path}: cannot read its certificates ({exc}); create them with `meshexp-build certs`"
        ) from None
    return found


def certificates_only(path: Path) -> bytes:
    """The certificates of a PEM bundle, re-encoded: what may go into a folder that
    containers mount. A file holding anything else (a key above all) is refused."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CertsError(f"{path}: cannot read it ({exc.strerror})") from None
    kinds = re.findall(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----", text)
    others = sorted({kind.decode() for kind in kinds} - {"CERTIFICATE"})
    if others:
        raise CertsError(
            f"{path} holds a {others[0]} besides certificates, and it would be copied into a "
            "folder that containers mount: keep only the trust anchor's certificate(s) in it"
        )
    found = _certificates(path)
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in found)


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} serial {cert.serial_number:x}"


def _signed_by(cert: x509.Certificate, signer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(signer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _next_files(anchor_key: Path) -> tuple[Path, Path]:
    """The new anchor's key and certificate, beside the anchor's key, while a rotation
    is under way."""
    next_key = anchor_key.with_name(f"next-{anchor_key.name}")
    return next_key, next_key.with_suffix(".crt")


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class Rotation:
    """Where a trust-anchor rotation of `folder` stands, read from its files."""

    folder: Path
    anchor_key: Path
    anchors: list[x509.Certificate]  # ca.crt
    issuer: x509.Certificate
    new: x509.Certificate | None  # next-ca.crt, while a rotation is under way
    new_key: ec.EllipticCurvePrivateKey | None  # next-ca.key, None when missing or broken
    key_problem: str  # why new_key is None

    @property
    def under_way(self) -> bool:
        next_key, next_cert = _next_files(self.anchor_key)
        return next_key.exists() or next_cert.exists()

    @property
    def bundled(self) -> bool:
        """ca.crt trusts the new anchor beside the old one."""
        return self.new is not None and any(
            _fingerprint(a) == _fingerprint(self.new) for a in self.anchors
        )

    @property
    def issuer_moved(self) -> bool:
        return self.new is not None and _signed_by(self.issuer, self.new)

    def stage(self) -> str:
        if not self.under_way:
            return "none"
        if self.new is None or not self.bundled:
            return "broken"
        return "issuer" if self.issuer_moved else "bundle"

    def describe(self) -> str:
        stage = self.stage()
        next_key, next_cert = _next_files(self.anchor_key)
        if stage == "none":
            return (
                f"no rotation under way: ca.crt trusts {len(self.anchors)} anchor(s); "
                "start one with --rotate bundle"
            )
        key = "present" if self.new_key is not None else f"NOT usable ({self.key_problem})"
        if stage == "broken":
            return (
                f"a rotation was begun but ca.crt does not hold {next_cert}'s anchor; go back "
                "with --rotate abort"
            )
        if stage == "bundle":
            onward = (
                "--rotate issuer (after restarting everything onto the bundle)"
                if self.new_key is not None
                else f"restore {next_key.name}"
            )
            return (
                f"bundle done: ca.crt trusts the old and the new anchor, the issuer is still "
                f"the old anchor's; {next_key.name} {key}. Next: {onward}, or go back with "
                "--rotate abort"
            )
        return (
            f"issuer done: the issuer is signed by the new anchor; {next_key.name} {key}. "
            "Next: --rotate finish (after restarting everything onto the new issuer); "
            "going back is no longer offered (issued certificates chain to the new anchor)"
        )


def _read_rotation(folder: Path, anchor_key: Path) -> Rotation:
    next_key, next_cert = _next_files(anchor_key)
    anchors = _certificates(folder / "ca.crt")
    issuer = _certificates(folder / "issuer.crt")[0]
    new = None
    with contextlib.suppress(CertsError):  # missing or broken: the rotation is "broken"
        new = _certificates(next_cert)[0]
    new_key, problem = None, ""
    try:
        loaded = serialization.load_pem_private_key(next_key.read_bytes(), None)
        if isinstance(loaded, ec.EllipticCurvePrivateKey):
            new_key = loaded
        else:
            problem = "not an ECDSA key"
    except FileNotFoundError:
        problem = "missing"
    except (OSError, ValueError, TypeError) as exc:
        said = (str(exc).splitlines() or [type(exc).__name__])[0]
        problem = f"unreadable ({said[:120]})"
    return Rotation(folder, anchor_key, anchors, issuer, new, new_key, problem)


def rotate_certs(
    *,
    folder: Path,
    phase: str,
    anchor_key: Path | None = None,
    anchor_days: int = 3650,
    issuer_days: int = 365,
) -> RotationResult:
    """One step of a trust-anchor rotation of the certificates in `folder`.

    bundle: a new anchor (its key beside the old one's, as next-<name>) and ca.crt =
    old + new; issuer: a new issuer signed by the new anchor; finish: ca.crt = the new
    anchor alone, whose key takes the old one's place. Each phase refuses to run out
    of order, naming the phase that comes first; nothing is written then. status says
    where a rotation stands and writes nothing; abort goes back (ca.crt = the old
    anchor alone, the new anchor's files removed) while the issuer is still the old
    anchor's, also when the new anchor's key is missing or broken.
    """
    if phase not in ROTATION_COMMANDS:
        raise CertsError(f"--rotate {phase}: choose one of {', '.join(ROTATION_COMMANDS)}")
    state = _read_rotation(folder, _anchor_key(folder, anchor_key))
    if phase == "status":
        return _rotated(phase, folder, (), (), state.anchors, state.describe())
    if phase == "abort":
        return _abort(state)
    if phase == "bundle":
        return _bundle(state, anchor_days)
    new, loaded = _new_anchor(state)
    if phase == "issuer":
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = _ca(ISSUER_CN, issuer_key, (new, loaded), issuer_days, 1)
        files = {
            folder / "issuer.crt": (_pem_cert(issuer), 0o644),
            folder / "issuer.key": (_pem_key(issuer_key), 0o600),
        }
        write_files(files)
        return _rotated(phase, folder, tuple(files), (), state.anchors)
    return _finish(state, new, loaded)


def _bundle(state: Rotation, anchor_days: int) -> RotationResult:
    """A new anchor beside the old one's key, and ca.crt = old + new."""
    folder, anchors = state.folder, state.anchors
    next_key, next_cert = _next_files(state.anchor_key)
    if state.under_way or len(anchors) != 1:
        raise CertsError(
            f"{folder}: a rotation is under way ({len(anchors)} anchors in ca.crt, "
            f"{next_key} {'present' if next_key.exists() else 'absent'}); see where with "
            "--rotate status"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    new = _ca(ANCHOR_CN, key, None, anchor_days, None)
    files = {
        next_key: (_pem_key(key), 0o600),
        next_cert: (_pem_cert(new), 0o644),
        folder / "ca.crt": (_pem_cert(anchors[0]) + _pem_cert(new), 0o644),
    }
    write_files(files)
    return _rotated("bundle", folder, tuple(files), (), [anchors[0], new])


def _new_anchor(state: Rotation) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The rotation's new anchor and its key, or why a later phase cannot run yet."""
    folder = state.folder
    next_key, next_cert = _next_files(state.anchor_key)
    if not state.under_way:
        raise CertsError(f"{folder}: no rotation is under way; start one with --rotate bundle")
    if state.new is None or not state.bundled:
        raise CertsError(
            f"{folder}/ca.crt does not hold the new anchor ({next_cert}); go back with "
            "--rotate abort, then start again with --rotate bundle"
        )
    if state.new_key is None:
        back = (
            "restore it from a backup (the issuer already signs with the new anchor)"
            if state.issuer_moved
            else "restore it, or go back with --rotate abort and start again"
        )
        raise CertsError(f"{next_key}: the new anchor's key is {state.key_problem}; {back}")
    return state.new, state.new_key


def _finish(
    state: Rotation, new: x509.Certificate, loaded: ec.EllipticCurvePrivateKey
) -> RotationResult:
    """ca.crt = the new anchor alone, whose key takes the old one's place."""
    folder = state.folder
    if not state.issuer_moved:
        raise CertsError(
            f"{folder}/issuer.crt is not signed by the new anchor yet; run --rotate issuer "
            "(and restart everything onto it) before --rotate finish"
        )
    next_key, next_cert = _next_files(state.anchor_key)
    files = {
        folder / "ca.crt": (_pem_cert(new), 0o644),
        state.anchor_key: (_pem_key(loaded), 0o600),
    }
    write_files(files)
    next_key.unlink()
    next_cert.unlink()
    return _rotated("finish", folder, tuple(files), (next_key, next_cert), [new])


def _abort(state: Rotation) -> RotationResult:
    """Back to the old anchor alone, while the issuer is still the old anchor's."""
    folder = state.folder
    if not state.under_way:
        raise CertsError(f"{folder}: no rotation is under way: nothing to go back from")
    if state.issuer_moved:
        raise CertsError(
            f"{folder}: the issuer already signs with the new anchor, so going back would "
            "leave certificates nothing trusts; go on with --rotate finish"
        )
    old = next((a for a in state.anchors if _signed_by(state.issuer, a)), None)
    if old is None:
        raise CertsError(
            f"{folder}/ca.crt holds no anchor that signed issuer.crt; recreate the "
            "certificates with `meshexp-build certs --force` after removing "
            f"{_next_files(state.anchor_key)[0].name} and {_next_files(state.anchor_key)[1].name}"
        )
    files = {folder / "ca.crt": (_pem_cert(old), 0o644)}
    write_files(files)
    removed = tuple(path for path in _next_files(state.anchor_key) if path.exists())
    for path in removed:
        path.unlink()
    return _rotated("abort", folder, tuple(files), removed, [old])


def _rotated(
    phase: str,
    folder: Path,
    written: tuple[Path, ...],
    removed: tuple[Path, ...],
    anchors: list[x509.Certificate],
    next_step: str = "",
) -> RotationResult:
    described = tuple(_describe(anchor) for anchor in anchors)
    return RotationResult(phase, folder, written, removed, described, next_step or NEXT_STEP[phase])


def create_node_cert(*, certs: Path, name: str, output: Path, days: int = 30) -> Path:
    """An x509pop node certificate for one workload host, signed by the issuer in `certs`.

    `output` gets ca.crt, node.crt and node.key (0600): the folder to mount into
    an agent-only image instead of a join token. The SPIRE server's x509pop
    attestor trusts the issuer; the certificate's CN is the workload's name.
    """
    try:
        issuer = x509.load_pem_x509_certificate((certs / "issuer.crt").read_bytes())
        issuer_key = serialization.load_pem_private_key((certs / "issuer.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise CertsError(
            f"{certs}: cannot read ca.crt, issuer.crt and issuer.key ({exc}); "
            "create them with `meshexp-build certs`"
        ) from None
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{certs}/issuer.key: expected an ECDSA key")
    anchor = certificates_only(certs / "ca.crt")  # what the mounted folder gets: no key
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    write_files(
        {
            output / "ca.crt": (anchor, 0o644),
            output / "node.crt": (_pem_cert(cert) + _pem_cert(issuer), 0o644),
            output / "node.key": (_pem_key(key), 0o600),
        }
    )
    return output
