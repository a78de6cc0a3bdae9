"""`meshexp-build check IMAGE`: prove an image meets the mesh contract.

Each check is a named pass/fail result with a detail line. The static ones
read the image (metadata, every layer's files); the live ones start it the way
the field does (its own network, NET_ADMIN and NET_RAW, certificates read-only)
and look at it from outside: identity, readiness, capture, least privilege and
a clean stop. The same checks run unchanged against the real Linkerd proxy.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cryptography import x509
from cryptography.x509 import verification

from builder.check.probes import PortProbe, ProbeResult
from builder.cluster.certs import create_certs
from builder.config.identity import workload_identity
from builder.core.errors import CheckError, MeshexpError
from builder.engine import containers, docker_engine

KEY_MATERIAL = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}")
MAX_SCANNED_FILE = 64 * 1024 * 1024
REQUIRED_LABELS = (
    "io.meshexp.workload",
    "io.meshexp.proxy-uid",
    "io.meshexp.workload-uid",
    "io.meshexp.trust-domain",
    "io.meshexp.iptables-mode",
)
AGENT_SOCKET = "/run/spire/agent/public/api.sock"
LOG_HELPERS = ("tee", "grep", "awk")
Exec = Callable[[list[str], str], tuple[int, str]]  # (command, user) -> (exit code, output)


class CheckFailed(Exception):
    """One check's failure, with the reason a user reads."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class CheckReport:
    image: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

    def add(self, name: str, run: Callable[[], str]) -> None:
        """Run one check; an assertion or error becomes a failed result with its reason."""
        start = time.monotonic()
        try:
            detail = run()
            passed = True
        except (CheckFailed, MeshexpError, OSError, ValueError) as exc:
            detail = str(getattr(exc, "message", exc)) or exc.__class__.__name__
            passed = False
        self.results.append(CheckResult(name, passed, detail, time.monotonic() - start))

    def junit(self) -> str:
        suite = ElementTree.Element(
            "testsuite",
            name=f"meshexp-build check {self.image}",
            tests=str(len(self.results)),
            failures=str(sum(not r.passed for r in self.results)),
        )
        for result in self.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname="meshexp.check",
                name=result.name,
                time=f"{result.seconds:.3f}",
            )
            if not result.passed:
                ElementTree.SubElement(
                    case, "failure", message=result.detail[:200]
                ).text = result.detail
            else:
                ElementTree.SubElement(case, "system-out").text = result.detail
        return ElementTree.tostring(suite, encoding="unicode")


@dataclass(frozen=True)
class ImageFacts:
    """What the image's labels say it should be."""

    labels: dict[str, str]

    def get(self, key: str) -> str:
        value = self.labels.get(f"io.meshexp.{key}")
        if value is None:
            raise CheckError(
                f"label io.meshexp.{key} is missing: was the image built by "
                "meshexp-build? Rebuild it with `meshexp-build image`"
            )
        return value

    def ports(self, key: str) -> list[int]:
        return [int(port) for port in self.get(key).split(",") if port]


@dataclass(frozen=True)
class InboundPolicy:
    """The default inbound policy a container runs under, as the proxy applies it
    while no policy controller answers: to the workload's ports and to its own
    admin port alike. No client of a check is authenticated (it speaks plaintext).
    """

    name: str
    cluster_networks: tuple[str, ...] = ()

    @classmethod
    def of(cls, facts: ImageFacts, env: dict[str, str]) -> InboundPolicy:
        name = env.get("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY") or facts.labels.get(
            "io.meshexp.inbound-policy", "all-unauthenticated"
        )
        networks = env.get("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "")
        return cls(name, tuple(n.strip() for n in networks.split(",") if n.strip()))

    def admits(self, subnet: str) -> bool:
        """Whether a plaintext client from `subnet` passes."""
        if self.name in ("all-unauthenticated", "audit"):
            return True
        if self.name == "cluster-unauthenticated":
            client = ipaddress.ip_network(subnet, strict=False)
            return any(
                client.subnet_of(ipaddress.ip_network(net, strict=False))  # type: ignore[arg-type]
                for net in self.cluster_networks
                if ipaddress.ip_network(net, strict=False).version == client.version
            )
        return False  # deny, all-authenticated, cluster-authenticated


# --------------------------------------------------------------------- static checks


def check_metadata(attrs: dict[str, Any]) -> str:
    config: dict[str, Any] = attrs.get("Config") or {}
    labels: dict[str, str] = config.get("Labels") or {}
    require(
        config.get("Entrypoint") == ["/usr/local/bin/bootstrap"],
        f"entrypoint is {config.get('Entrypoint')}, not the bootstrap",
    )
    missing = [label for label in REQUIRED_LABELS if label not in labels]
    require(not missing, f"labels missing: {', '.join(missing)}")
    exposed = set(config.get("ExposedPorts") or {})
    wanted = {f"{port}/tcp" for port in ImageFacts(labels).ports("workload-ports")} | {
        "4143/tcp",
        "4191/tcp",
    }
    require(wanted <= exposed, f"exposed ports {sorted(exposed)} lack {sorted(wanted - exposed)}")
    standin = labels.get("io.meshexp.proxy-standin")
    release = labels.get("io.meshexp.proxy-release") or labels.get("io.meshexp.proxy-version")
    proxy = standin if standin else f"proxy {release}"
    return (
        f"entrypoint bootstrap, user {config.get('User') or 'root'}, {proxy}, "
        f"Linkerd {labels.get('io.meshexp.linkerd-version')}, SPIRE "
        f"{labels.get('io.meshexp.spire-version')} ({labels.get('io.meshexp.spire-topology')})"
    )


def iter_layer_files(saved: Path) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) for every regular file in every layer of a `docker save` tar."""
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            if not (
                member.isfile()
                and (member.name.endswith("layer.tar") or member.name.startswith("blobs/"))
            ):
                continue
            handle = outer.extractfile(member)
            if handle is None:
                continue
            try:
                layer = tarfile.open(fileobj=handle)  # noqa: SIM115 - closed by the with below
            except tarfile.TarError:
                continue  # a config or manifest blob, not a layer
            with layer:
                for item in layer.getmembers():
                    if item.isfile() and item.size <= MAX_SCANNED_FILE:
                        data = layer.extractfile(item)
                        if data is not None:
                            yield member.name, "/" + item.name.removeprefix("./"), data.read()


def check_no_key_material(reference: str) -> str:
    with tempfile.TemporaryDirectory(prefix="meshexp-scan-") as scratch:
        saved = Path(scratch) / "image.tar"
        docker_engine.save_image(reference, saved)
        found, files = [], 0
        for layer, path, content in iter_layer_files(saved):
            files += 1
            # Executables carry test keys of their own (libgnutls does); what leaks into
            # a layer by mistake is a PEM file.
            if not content.startswith(b"\x7fELF") and KEY_MATERIAL.search(content):
                found.append(f"{path} (layer {layer[:19]})")
    require(not found, f"private key material in the image: {', '.join(found[:5])}")
    require(files > 0, "no layer files were read")
    return f"no private key in {files} files across all layers"


# --------------------------------------------------------------------- live checks


def http_status(ip: str, port: int, path: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


CERTIFIED_LINE = "Certified identity"


def wait_ready(
    box: containers.MeshContainer, limit: float, policy: InboundPolicy | None = None
) -> str:
    """/ready answers 200; or, where the default policy refuses the check's plaintext
    probe (no policy controller answers), the proxy has logged its certified identity.
    """
    policy = policy or InboundPolicy("all-unauthenticated")
    deadline = time.monotonic() + limit
    status: object = None
    while time.monotonic() < deadline:
        try:
            status, _ = http_status(box.ip, 4191, "/ready")
        except OSError as exc:
            status = exc
        if status == 200:
            return f"/ready answered 200 {time.monotonic() - box.started_at:.1f}s after start"
        if status in (403, 404) and CERTIFIED_LINE in box.logs():
            return (
                f"the proxy certified its identity {time.monotonic() - box.started_at:.1f}s "
                f"after start (its log); /ready is refused ({status}) by the default inbound "
                f"policy {policy.name}, as the proxy does until a policy controller answers"
            )
        time.sleep(0.2)
    raise CheckFailed(
        f"the proxy was not ready within {limit:.0f}s: /ready last answered {status!r} and "
        f"the proxy did not log {CERTIFIED_LINE!r}; see the container log"
    )


METRIC_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
ADMIN_PORT = "4191"


def metric_series(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Each sample of metric `name` in Prometheus text: its labels and its value."""
    samples = []
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            labels = dict(METRIC_LABEL.findall(line.split("}", 1)[0]))
            samples.append((labels, float(line.rsplit(" ", 1)[1])))
    return samples


def count_connections(metrics: str, direction: str) -> int:
    """Connections the proxy accepted from clients (`peer="src"`) in one direction.

    The real proxy also counts its own hop to the target (`peer="dst"`) and the
    connections to its admin port (our metrics scrapes among them, labelled
    `target_port="4191"`): those are not traffic through the proxy.
    """
    return sum(
        int(value)
        for labels, value in metric_series(metrics, "tcp_open_total")
        if labels.get("direction") == direction
        and labels.get("peer", "src") == "src"
        and labels.get("target_port") != ADMIN_PORT
    )


def tcp_open_total(ip: str, direction: str) -> int:
    _, text = http_status(ip, 4191, "/metrics")
    return count_connections(text, direction)


def check_identity(
    box: containers.MeshContainer, facts: ImageFacts, name: str, namespace: str, anchor_file: Path
) -> str:
    proxy_uid = facts.get("proxy-uid")
    box.exec(["install", "-d", "-o", proxy_uid, "-m", "0700", "/tmp/meshexp-check"])
    code, out = box.exec(
        [
            "spire-agent",
            "api",
            "fetch",
            "x509",
            "-socketPath",
            AGENT_SOCKET,
            "-write",
            "/tmp/meshexp-check",
        ],
        user=proxy_uid,
    )
    require(code == 0, f"the agent gave UID {proxy_uid} no SVID: {out.strip()[-300:]}")
    _, pem = box.exec(["cat", "/tmp/meshexp-check/svid.0.pem"], user=proxy_uid)
    box.exec(["rm", "-rf", "/tmp/meshexp-check"])
    chain = x509.load_pem_x509_certificates(pem.encode())
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    dns = names.get_values_for_type(x509.DNSName)
    # Images from before the identity label carry the walk-through's names.
    style = facts.labels.get("io.meshexp.identity", "walkthrough")
    wanted = workload_identity(style, facts.get("trust-domain"), namespace, name)
    expected = wanted.spiffe_id
    require(uris == [expected], f"SVID is {uris}, the ExternalWorkload declares {expected}")
    require(
        dns == [wanted.dns_name],
        f"the SVID's DNS names are {dns}, the ExternalWorkload's serverName is {wanted.dns_name}",
    )
    anchor = x509.load_pem_x509_certificate(anchor_file.read_bytes())
    verifier = (
        verification.PolicyBuilder().store(verification.Store([anchor])).build_client_verifier()
    )
    try:
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as exc:
        raise CheckFailed(f"the SVID does not chain to the trust anchor alone: {exc}") from None
    return (
        f"{expected} (DNS {wanted.dns_name}), chain of {len(chain)} verifies against the "
        "trust anchor alone"
    )


def check_rules(box: containers.MeshContainer, facts: ImageFacts) -> str:
    binary = f"iptables-{facts.get('iptables-mode')}-save"
    code, rules = box.exec([binary, "-t", "nat"])
    require(code == 0, f"{binary} failed: {rules.strip()}")
    lines = [line for line in rules.splitlines() if line.startswith("-A ")]
    uid = facts.get("proxy-uid")
    wanted = [
        "-A PREROUTING -j PROXY_INIT_REDIRECT",
        "-A OUTPUT -j PROXY_INIT_OUTPUT",
        "-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-ports 4143",
        f"-A PROXY_INIT_OUTPUT -m owner --uid-owner {uid} -j RETURN",
        "-A PROXY_INIT_OUTPUT -o lo -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-ports 4140",
    ]
    for port_list, chain in (
        (facts.get("inbound-ports-to-ignore"), "PROXY_INIT_REDIRECT"),
        (facts.get("outbound-ports-to-ignore"), "PROXY_INIT_OUTPUT"),
    ):
        if port_list:
            wanted.append(f"-A {chain} -p tcp -m multiport --dports {port_list} -j RETURN")
    missing = [rule for rule in wanted if rule not in lines]
    require(not missing, f"rules missing: {missing}")
    for jump in wanted[:2]:
        require(lines.count(jump) == 1, f"{jump!r} appears {lines.count(jump)} times")
    order = [line for line in lines if line.startswith("-A PROXY_INIT_OUTPUT")]
    require(order.index(wanted[3]) < order.index(wanted[5]), "the UID exemption must come first")
    return f"{len(wanted)} rules in place, jumps once each, UID {uid} exempt"


def http_probe(port: int, host: str = "") -> str:
    """A bash line that sends GET / to HOST:PORT and prints the answer (no curl needed)."""
    return PortProbe(port).script(host or "127.0.0.1")


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def port_probes(facts: ImageFacts) -> list[PortProbe]:
    return PortProbe.from_label(
        facts.labels.get("io.meshexp.port-protocols"), facts.ports("workload-ports")
    )


def check_inbound(
    box: containers.MeshContainer, facts: ImageFacts, image: str, policy: InboundPolicy
) -> str:
    """A client container on the network reaches each workload port through the proxy,
    speaking the port's protocol, or is refused exactly as the default policy says.
    """
    admitted = policy.admits(docker_engine.network_subnet(box.network))
    lines = []
    for probe in port_probes(facts):
        before = tcp_open_total(box.ip, "inbound") if admitted else None
        code, output = docker_engine.run_once(
            image,
            ["-c", probe.script(box.ip)],
            network=box.network,
            entrypoint="bash",
            user="65534",
        )
        result = probe.read(output)
        if admitted:
            require(result.answered, f"{probe.describe()}: {result.summary} (exit {code})")
            after = tcp_open_total(box.ip, "inbound")
            require(
                before is not None and after > before,
                f"{probe.describe()} answered but the proxy's inbound counter did not move",
            )
            local = local_answer(box, facts, probe)
            require(
                result.signature == local.signature,
                f"{probe.describe()}: a client got {result.summary}, but the workload itself "
                f"answers {local.summary}: the answer was not the workload's",
            )
            lines.append(
                f"{probe.describe()}: a client {result.summary}, as the workload does locally; "
                f"inbound {before} -> {after}"
            )
        else:
            lines.append(refused_by_policy(box, facts, probe, result, policy))
    return "; ".join(lines)


def local_answer(box: containers.MeshContainer, facts: ImageFacts, probe: PortProbe) -> ProbeResult:
    """The same probe from inside, as the workload's UID to 127.0.0.1 (not captured):
    the workload's own answer.
    """
    _, output = box.exec(["bash", "-c", probe.script()], user=facts.get("workload-uid"))
    local = probe.read(output)
    require(local.answered, f"{probe.describe()} on 127.0.0.1: {local.summary}")
    return local


def refused_by_policy(
    box: containers.MeshContainer,
    facts: ImageFacts,
    probe: PortProbe,
    result: ProbeResult,
    policy: InboundPolicy,
) -> str:
    """The proxy refused a client as the policy says, while the workload itself
    answers the same probe on lo (not captured): so the refusal is the proxy's.
    """
    local = local_answer(box, facts, probe)
    expected = "closed the connection" if policy.name == "deny" else "answered"
    require(
        (result.refused or "").startswith(expected) and result.signature != local.signature,
        f"policy {policy.name}, yet a plaintext client on {probe.describe()} got: {result.summary}",
    )
    return (
        f"default policy {policy.name}: the proxy {result.refused} for a plaintext client on "
        f"{probe.describe()}; the workload answers locally ({local.summary})"
    )


@contextmanager
def peer_listener(address: str) -> Iterator[tuple[int, list[str]]]:
    """A TCP peer on the check's own network (the host side of its bridge)."""
    server = socket.create_server((address, 0))
    server.settimeout(0.5)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen.append(peer[0])
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def answer(conn: socket.socket) -> None:
        # Answer, then keep the connection open until the client closes it, so
        # that its socket can be seen established inside the container.
        with conn:
            conn.settimeout(10)
            try:
                conn.sendall(b"peer\n")
                while conn.recv(1024):
                    pass
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Socket:
    """One established TCP socket as `ss -tneH` shows it inside the container."""

    local: str
    peer: str
    uid: int


SOCKET_UID = re.compile(r"\buid:(\d+)")


def parse_sockets(text: str) -> list[Socket]:
    """The sockets of `ss -tneH state established` lines (Recv-Q Send-Q Local Peer ... uid:N).

    The owner UID comes from the kernel (no /proc reading, which root in a
    container without CAP_SYS_PTRACE may not do for other UIDs).
    """
    sockets = []
    for line in text.splitlines():
        fields = line.split(None, 4)
        owner = SOCKET_UID.search(line)
        if len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit() and owner:
            sockets.append(Socket(fields[2], fields[3], int(owner.group(1))))
    return sockets


OUTBOUND_PORT = 4140


def outbound_connection(run: Exec, uid: str, peer: str) -> tuple[str, list[Socket]]:
    """Open a connection to `peer` as `uid` and hold it while the kernel's sockets are read.

    Returns what the peer answered through it (empty when nothing came back
    within 4 s) and the established sockets seen while it was open.
    """
    host, port = peer.rsplit(":", 1)
    # The client keeps its connection open until the sockets have been read.
    client = (
        'exec 3<>/dev/tcp/$0/$1 || exit 9; read -r -t 4 line <&3; echo "answer:$line"; '
        "for _ in $(seq 50); do [ -e /tmp/meshexp-outbound.read ] && break; sleep 0.1; done"
    )
    script = (
        "rm -f /tmp/meshexp-outbound.read; "
        f"setpriv --reuid {uid} --regid {uid} --clear-groups -- bash -c '{client}' "
        f"{host} {port} >/tmp/meshexp-outbound & client=$!; "
        f"for _ in $(seq 100); do ss -tnH state established dst {peer} 2>/dev/null | grep -q . "
        "&& break; sleep 0.1; done; ss -tneH state established 2>/dev/null; "
        ": >/tmp/meshexp-outbound.read; "
        'wait $client; echo "client-exit:$?"; '
        "cat /tmp/meshexp-outbound; rm -f /tmp/meshexp-outbound /tmp/meshexp-outbound.read"
    )
    code, out = run(["bash", "-c", script], "0")
    require(code == 0, f"could not open a connection as UID {uid} (exit {code}): {out[-300:]}")
    lines = out.splitlines()
    answer = next((line[len("answer:") :] for line in lines if line.startswith("answer:")), "")
    return answer, parse_sockets(out)


def landed_on_proxy(sockets: list[Socket], peer: str, proxy_uid: int) -> str:
    """Where a connection to `peer` really went: the proxy's listening address that
    received it; fails, with the reason, when it bypassed the proxy.
    """
    client = [s for s in sockets if s.peer == peer and s.uid != proxy_uid]
    require(client, f"the connection to {peer} was not established: {sockets}")
    local = client[0].local
    landed = [s for s in sockets if s.peer == local]
    require(landed, f"no socket in the container received the connection from {local}")
    where = landed[0]
    require(
        where.local.endswith(f":{OUTBOUND_PORT}"),
        f"the connection to {peer} bypassed the proxy: it landed on {where.local} "
        f"(a socket of UID {where.uid})",
    )
    require(
        where.uid == proxy_uid,
        f"the connection to {peer} landed on {where.local}, a socket of UID {where.uid}, "
        f"not of the proxy's UID {proxy_uid} that the image declares",
    )
    return where.local


def check_outbound(box: containers.MeshContainer, facts: ImageFacts) -> str:
    """The workload UID's connection lands on the proxy's outbound listener with the peer
    as its original destination; the proxy UID's own goes straight to the peer.

    Proved from the kernel's sockets: the client's socket names the peer, and
    the socket at the other end of it is the proxy's, on 127.0.0.1:4140. Without
    a control plane linkerd2-proxy holds such a connection until the policy
    controller answers for the target; with one it completes.
    """
    gateway = docker_engine.network_gateway(box.network)
    with peer_listener(gateway) as (port, seen):
        peer = f"{gateway}:{port}"
        answer, sockets = outbound_connection(box.exec, facts.get("workload-uid"), peer)
        proxy_uid = int(facts.get("proxy-uid"))
        landed = landed_on_proxy(sockets, peer, proxy_uid)
        workload_seen = len(seen)
        fate = (
            "completed through the proxy"
            if answer == "peer"
            else "held by the proxy: no policy controller answers here"
        )
        require(
            (answer == "peer") == (workload_seen == 1),
            f"the peer saw {workload_seen} connection(s) but the workload got {answer!r}",
        )
        own_answer, own_sockets = outbound_connection(box.exec, facts.get("proxy-uid"), peer)
        require(
            own_answer == "peer", f"the proxy UID could not reach {peer} directly: {own_answer!r}"
        )
        direct = [s for s in own_sockets if s.peer == peer and s.uid == proxy_uid]
        require(direct, f"the proxy UID's connection to {peer} was not seen: {own_sockets}")
        looped = [s for s in own_sockets if s.peer == direct[0].local]
        require(not looped, f"the proxy UID's own connection was redirected to {looped}")
        require(len(seen) == workload_seen + 1, f"the peer saw {len(seen)} connections")
    return (
        f"workload UID -> {peer} landed on the proxy's {landed} ({fate}); "
        "proxy UID reached the peer directly"
    )


@dataclass(frozen=True)
class Process:
    """One process in a container: its name, UID and resident memory."""

    name: str
    uid: int
    rss_kib: int


# One line per process: UID, VmRSS in KiB, then the command line with its NULs
# and newlines made spaces (an argument may span lines: the agent's awk program
# does). Bash builtins and coreutils only; the listing's own shells are skipped.
PROCESS_LISTING = (
    'for p in /proc/[0-9]*; do [ "$p" = "/proc/$$" ] && continue; '
    'c=$(tr "\\0\\n" "  " <"$p/cmdline" 2>/dev/null) || continue; [ -n "$c" ] || continue; '
    'r=0; while read -r k v _; do [ "$k" = VmRSS: ] && r=$v; done <"$p/status"; '
    'echo "$(stat -c %u "$p") $r $c"; done'
)
LISTING_HELPERS = ("tr", "stat", "bash")


def parse_processes(text: str) -> list[Process]:
    """The processes of a PROCESS_LISTING output (lines that are not one are skipped)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            continue
        uid, rss, words = fields[0], fields[1], fields[2:]
        name = (
            "bootstrap" if "/usr/local/bin/bootstrap" in words[:2] else words[0].rsplit("/", 1)[-1]
        )
        if name not in LISTING_HELPERS:
            found.append(Process(name, int(uid), int(rss)))
    return found


def list_processes(run: Exec) -> list[Process]:
    """Every process in a container, through `run` (an exec as root)."""
    code, out = run(["bash", "-c", PROCESS_LISTING], "0")
    require(code == 0, f"could not list the container's processes (exit {code}): {out[-300:]}")
    return parse_processes(out)


def processes(box: containers.MeshContainer) -> list[tuple[str, int]]:
    """(name, UID) of every process in the container, once per distinct pair, sorted."""
    return sorted({(process.name, process.uid) for process in list_processes(box.exec)})


def process_uids(box: containers.MeshContainer) -> dict[str, int]:
    """Process name -> UID (for names that run once, such as the proxy)."""
    return dict(processes(box))


def check_binaries(box: containers.MeshContainer, facts: ImageFacts) -> str:
    """Each binary is present and executable by the UID that runs it."""
    wanted = {
        "/usr/lib/linkerd/linkerd2-proxy": facts.get("proxy-uid"),
        "/usr/local/bin/spire-agent": facts.get("spire-uid"),
        "/opt/workload/launch": facts.get("workload-uid"),
    }
    if facts.get("spire-topology") == "demo":
        wanted["/usr/local/bin/spire-server"] = facts.get("spire-uid")
    for path, uid in wanted.items():
        code, out = box.exec(["test", "-f", path, "-a", "-x", path], user=uid)
        require(code == 0, f"{path} is missing or not executable by UID {uid} {out}".strip())
    return ", ".join(f"{path.rsplit('/', 1)[1]} by {uid}" for path, uid in wanted.items())


def check_least_privilege(box: containers.MeshContainer, facts: ImageFacts) -> str:
    running = processes(box)
    roots = sorted(name for name, uid in running if uid == 0)
    require(roots == ["bootstrap"], f"running as root besides the bootstrap: {roots}")
    proxy_uid, spire_uid = int(facts.get("proxy-uid")), int(facts.get("spire-uid"))
    expected = {
        "linkerd2-proxy": {proxy_uid},
        "spire-server": {spire_uid},
        "spire-agent": {spire_uid},
        # The bootstrap reads the proxy's and the agent's logs through helpers
        # of their own UIDs (tee, grep, awk).
        **{helper: {proxy_uid, spire_uid} for helper in LOG_HELPERS},
    }
    proxy = [uid for name, uid in running if name == "linkerd2-proxy"]
    require(
        proxy == [int(facts.get("proxy-uid"))],
        f"the proxy runs as UID {', '.join(map(str, proxy)) or 'nothing'}, "
        f"the image declares {facts.get('proxy-uid')}",
    )
    for name, uid in running:
        if name in expected:
            require(uid in expected[name], f"{name} runs as UID {uid}, not {expected[name]}")
    workload_uid = int(facts.get("workload-uid"))
    others = {(name, uid) for name, uid in running if name not in expected and name != "bootstrap"}
    require(others, "no workload process found")
    require(
        {uid for _, uid in others} == {workload_uid},
        f"workload processes run as {sorted(others)}, not {workload_uid}",
    )
    return ", ".join(f"{name}={uid}" for name, uid in running)


def check_stop(box: containers.MeshContainer) -> str:
    seconds, code = box.stop_timed(timeout=10)
    require(seconds < 10, f"docker stop took {seconds:.1f}s: a child ignored SIGTERM")
    logs = box.logs()
    require("stopping all children" in logs, "the bootstrap did not forward the signal")
    return f"stopped in {seconds:.1f}s with exit code {code}"


# --------------------------------------------------------------------- driver


def check_image(
    *,
    image: str,
    certs: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CheckReport:
    """Every check against one image; never raises for a failed check, only for no engine."""
    attrs = docker_engine.image_attrs(image)
    facts = ImageFacts(dict(attrs["Config"].get("Labels") or {}))
    report = CheckReport(image)
    report.add("metadata", lambda: check_metadata(attrs))
    report.add("contents: no private key in any layer", lambda: check_no_key_material(image))
    env = dict(env or {})
    name = env.get("WORKLOAD_NAME") or facts.get("workload")
    namespace = env.get("WORKLOAD_NAMESPACE") or facts.get("workload-namespace")
    policy = InboundPolicy.of(facts, env)
    with tempfile.TemporaryDirectory(prefix="meshexp-check-") as scratch:
        if certs is None:
            certs = Path(scratch) / "certs"
            create_certs(folder=certs)
        with containers.own_network() as network:
            try:
                with containers.mesh_container(
                    image=image, network=network, certs=certs, env=env, timeout=timeout
                ) as box:
                    _live_checks(
                        report,
                        box,
                        facts,
                        (name, namespace),
                        certs / "ca.crt",
                        image,
                        timeout,
                        policy,
                    )
            except CheckError as exc:
                report.results.append(CheckResult("start", False, str(exc.message)))
    return report


def _live_checks(
    report: CheckReport,
    box: containers.MeshContainer,
    facts: ImageFacts,
    workload: tuple[str, str],
    anchor: Path,
    image: str,
    timeout: float,
    policy: InboundPolicy,
) -> None:
    name, namespace = workload
    report.add("readiness", lambda: wait_ready(box, timeout, policy))
    report.add("contents: binaries and their users", lambda: check_binaries(box, facts))
    report.add("identity", lambda: check_identity(box, facts, name, namespace, anchor))
    report.add("capture: rules", lambda: check_rules(box, facts))
    report.add(
        "capture: inbound through the proxy", lambda: check_inbound(box, facts, image, policy)
    )
    report.add("capture: outbound through the proxy", lambda: check_outbound(box, facts))
    report.add("least privilege", lambda: check_least_privilege(box, facts))
    report.add("stop", lambda: check_stop(box))
