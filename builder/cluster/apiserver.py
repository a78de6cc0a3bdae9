"""A real Kubernetes API server on loopback: etcd and kube-apiserver, started and
stopped by us (the one module that runs them).

There is no kubelet and no controller-manager, but what meshexp-build needs
from a cluster is there: custom resources (Linkerd's CRDs), status
subresources, server-side validation and apply. kube-apiserver comes from the
Go module proxy (builder.build.gobuild); etcd from Debian (`etcd-server`, on PATH or
unpacked by scripts/setup.sh into the cache). The admin token and the
service-account key stay in the server's folder, mode 0600, and are never
printed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from builder.build.kube_apiserver import cached_kube_apiserver
from builder.cluster import kube
from builder.core.cache import cache_root
from builder.core.errors import MeshexpError
from builder.core.files import write_secret
from builder.core.net import free_port, wait_for_ok
from builder.core.process import run as run_program
from builder.core.progress import Progress
from builder.core.wait import NotYet, TimedOut, until

KUBERNETES_VERSION = "v1.34.4"
SERVICE_CIDR = "10.96.0.0/16"
READY_TIMEOUT = 60.0


class APIServerError(MeshexpError):
    """The local API server could not be started."""


@dataclass(frozen=True)
class APIServer:
    """A running API server: where it answers and the kubeconfig for it."""

    url: str
    kubeconfig: Path
    folder: Path
    crds: tuple[str, ...]
    pids: tuple[int, ...] = ()


def find_etcd() -> Path:
    """etcd: on PATH, or Debian's etcd-server unpacked into the cache by setup.sh."""
    for candidate in (shutil.which("etcd"), cache_root() / "etcd" / "usr" / "bin" / "etcd"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise APIServerError(
        "etcd is missing: install Debian's etcd-server (apt-get install etcd-server), or "
        "unpack it without its service: apt-get download etcd-server && dpkg -x "
        f"etcd-server_*.deb {cache_root() / 'etcd'} (scripts/setup.sh does this)"
    )


def prepare_apiserver(progress: Progress | None = None) -> tuple[Path, Path]:
    """kube-apiserver (built once, cached) and etcd (found): what a server needs."""
    etcd = find_etcd()  # fails fast, before a build of minutes
    return cached_kube_apiserver(KUBERNETES_VERSION, progress), etcd


def service_account_keys(folder: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_secret(
        folder / "sa.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    (folder / "sa.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@contextlib.contextmanager
def _process(command: list[str], log: Path, what: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log`; stopped (TERM, then KILL) on the way out."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _alive(process: subprocess.Popen[bytes], log: Path, what: str) -> Callable[[], None]:
    """A check that raises, with the log's tail, once `process` has exited."""

    def alive() -> None:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise APIServerError(f"{what} exited with code {process.returncode}:\n{tail}")

    return alive


def _wait(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    what: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Poll `url` until it answers 200; fail early, with the log's tail, if `process` dies."""
    alive = _alive(process, log, what)
    last = wait_for_ok(url, timeout=READY_TIMEOUT, alive=alive, headers=headers, context=context)
    if last is not None:
        raise APIServerError(
            f"{what} did not answer {url} within {READY_TIMEOUT:.0f}s ({last}); see {log}"
        )


def admin_token(folder: Path) -> str:
    """A fresh service-account key pair and admin token in `folder` (mode 0600); the token."""
    service_account_keys(folder)
    token = secrets.token_hex(24)
    write_secret(folder / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n'.encode())
    return token


def serving_tls(
    folder: Path, timeout: float = READY_TIMEOUT, alive: Callable[[], None] = lambda: None
) -> ssl.SSLContext:
    """A TLS context that trusts the server's own certificate and nothing else, once the
    server has written it (kube-apiserver makes it at its start, in folder/certs): the
    admin token is only ever sent to that server."""
    certificate = folder / "certs" / "apiserver.crt"

    def trusted() -> ssl.SSLContext | NotYet:
        alive()
        try:
            return ssl.create_default_context(cafile=str(certificate))
        except (OSError, ssl.SSLError) as exc:
            return NotYet(str(exc))

    try:
        return until(trusted, timeout=timeout)
    except TimedOut as exc:
        raise APIServerError(
            f"kube-apiserver wrote no serving certificate {certificate} in {timeout:.0f}s "
            f"({exc.reason})"
        ) from None


def connect_with_crds(
    url: str, token: str, folder: Path, kubeconfig: Path, crds: tuple[str, ...]
) -> tuple[kube.KubeClient, list[str]]:
    """A kubeconfig for a ready server (its own certificate in folder/certs), a client that
    verifies against it, and `crds` applied; the client and the CRDs' names."""
    write_kubeconfig(kubeconfig, url, (folder / "certs" / "apiserver.crt").read_bytes(), token)
    client = kube.connect(kubeconfig)
    applied: list[str] = []
    for text in crds:
        applied += kube.apply_crds(client, text)
    return client, applied


def write_kubeconfig(
    path: Path, url: str, ca_pem: bytes, token: str, owner: int | None = None
) -> None:
    """A kubeconfig with the admin (or a service account's) token: a secret, mode 0600."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "meshexp",
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "meshexp-admin", "user": {"token": token}}],
        "contexts": [
            {"name": "meshexp", "context": {"cluster": "meshexp", "user": "meshexp-admin"}}
        ],
        "current-context": "meshexp",
    }
    write_secret(path, yaml.safe_dump(config, sort_keys=False).encode(), owner=owner)


def etcd_command(etcd: Path, folder: Path, client_url: str, peer_port: int) -> list[str]:
    peer_url = f"http://127.0.0.1:{peer_port}"
    return [
        str(etcd),
        "--name=meshexp",
        f"--data-dir={folder / 'etcd-data'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=meshexp={peer_url}",
        "--initial-cluster-state=new",
        "--logger=zap",
    ]


def apiserver_command(
    binary: Path, folder: Path, etcd_url: str, bind: str, port: int, advertise: str
) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={bind}",
        f"--advertise-address={advertise}",
        f"--secure-port={port}",
        f"--cert-dir={folder / 'certs'}",
        f"--token-auth-file={folder / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={folder / 'sa.pub'}",
        f"--service-account-signing-key-file={folder / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # a loopback advertise address is refused for the kubernetes Endpoints
        "--endpoint-reconciler-type=none",
    ]


@contextlib.contextmanager
def local_apiserver(
    *,
    folder: Path,
    crds: tuple[str, ...] = (),
    bind: str = "127.0.0.1",
    progress: Progress | None = None,
) -> Iterator[APIServer]:
    """etcd and kube-apiserver on `bind`, ready, with a kubeconfig and `crds` applied.

    Both processes are stopped, with nothing of theirs left running, when the
    block ends, also after a failure. `folder` keeps the kubeconfig and logs.
    """
    progress = progress or Progress()
    binary, etcd = prepare_apiserver(progress)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("etcd-data", "certs"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    token = admin_token(folder)
    etcd_url = f"http://127.0.0.1:{free_port()}"
    port = free_port(bind)
    host = "127.0.0.1" if bind in ("127.0.0.1", "0.0.0.0") else bind
    url = f"https://{host}:{port}"
    with contextlib.ExitStack() as stack:
        with progress.phase(f"Kubernetes API server {url}"):
            server = _start(stack, binary, etcd, folder, etcd_url, bind, port, host, token, crds)
        yield server


def _start(
    stack: contextlib.ExitStack,
    binary: Path,
    etcd: Path,
    folder: Path,
    etcd_url: str,
    bind: str,
    port: int,
    host: str,
    token: str,
    crds: tuple[str, ...],
) -> APIServer:
    """Start etcd, then kube-apiserver (both stopped by `stack`); ready, with the CRDs."""
    url = f"https://{host}:{port}"
    etcd_log = folder / "etcd.log"
    etcd_process = stack.enter_context(
        _process(etcd_command(etcd, folder, etcd_url, free_port()), etcd_log, "etcd")
    )
    _wait(f"{etcd_url}/health", etcd_process, etcd_log, "etcd")
    api_log = folder / "kube-apiserver.log"
    api_process = stack.enter_context(
        _process(
            apiserver_command(binary, folder, etcd_url, bind, port, host),
            api_log,
            "kube-apiserver",
        )
    )
    _wait(
        f"{url}/readyz",
        api_process,
        api_log,
        "kube-apiserver",
        headers={"Authorization": f"Bearer {token}"},
        context=serving_tls(folder, alive=_alive(api_process, api_log, "kube-apiserver")),
    )
    kubeconfig = folder / "kubeconfig"
    _, applied = connect_with_crds(url, token, folder, kubeconfig, crds)
    return APIServer(url, kubeconfig, folder, tuple(applied), (etcd_process.pid, api_process.pid))


def linkerd_crds(cli: Path | None = None) -> tuple[str, ...]:
    """Linkerd's CRDs as `linkerd install --crds` renders them: with `cli`, or the
    linkerd on PATH (none when there is none). `--ignore-cluster`: there is no
    cluster yet to ask (the CLI otherwise refuses without a kubeconfig).
    """
    linkerd = str(cli) if cli is not None else shutil.which("linkerd")
    if linkerd is None:
        return ()
    return (
        run_program(
            [linkerd, "install", "--crds", "--ignore-cluster"],
            what="linkerd install --crds",
            error=APIServerError,
        ),
    )
