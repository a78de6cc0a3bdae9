"""The live checks of a started image: readiness, identity (the SVID against the trust
anchor), the capture rules, binaries and their users, least privilege and a clean stop.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

from builder.check.listings import count_connections, list_processes
from builder.check.report import CheckFailed, ImageFacts, InboundPolicy, require
from builder.config.identity import workload_identity
from builder.core import image_contract
from builder.core.net import host_port, proxy_readiness
from builder.core.wait import NotYet, TimedOut, until
from builder.engine import containers


def http_status(ip: str, port: int, path: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(
            f"http://{host_port(ip, port)}{path}", timeout=timeout
        ) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_ready(
    box: containers.MeshContainer, limit: float, policy: InboundPolicy | None = None
) -> str:
    """/ready answers 200; or, where the default policy refuses the check's plaintext
    probe (no policy controller answers), the proxy has logged its certified identity.
    """
    policy = policy or InboundPolicy("all-unauthenticated")

    def certified() -> bool:
        return image_contract.CERTIFIED_LINE in box.logs()

    def ready() -> str | NotYet:
        ready, said = proxy_readiness(box.ip, certified=certified)
        after = f"{time.monotonic() - box.started_at:.1f}s after start"
        if not ready:
            return NotYet(said)
        if said == f"HTTP {image_contract.PROXY_READY_STATUS}":
            return f"/ready answered 200 {after}"
        return (
            f"the proxy certified its identity {after} (its log); /ready is refused "
            f"({said}) by the default inbound policy {policy.name}, as the proxy does until "
            "a policy controller answers"
        )

    try:
        return until(ready, timeout=limit)
    except TimedOut as exc:
        raise CheckFailed(
            f"the proxy was not ready within {limit:.0f}s: /ready last answered {exc.reason} "
            f"and the proxy did not log {image_contract.CERTIFIED_LINE!r}; see the container log"
        ) from None


def check_workload_readiness(box: containers.MeshContainer, facts: ImageFacts, limit: float) -> str:
    """The image's readiness probe (its label says which) passes in the container, and the
    bootstrap said "workload ready" once it did."""
    label = facts.readiness
    last: dict[str, object] = {"exit": -1}  # the probe's last exit code

    def passed() -> str | NotYet:
        code, answer = box.exec([image_contract.PROBE])
        last["exit"] = code
        if code == 0 and image_contract.WORKLOAD_READY_LINE in box.logs():
            return f"{answer.strip()} (the image's probe: {label})"
        return NotYet(answer.strip())

    try:
        return until(passed, timeout=limit, interval=0.5)
    except TimedOut as exc:
        answer, code = exc.reason, last["exit"]
    said = (
        "and the bootstrap said workload ready"
        if image_contract.WORKLOAD_READY_LINE in box.logs()
        else ("and the bootstrap never said workload ready")
    )
    raise CheckFailed(
        f"the image's readiness probe did not pass within {limit:.0f}s: it last answered "
        f"{answer!r} (exit {code}), {said}; the probe is {label}"
    )


def tcp_open_total(ip: str, direction: str) -> int:
    _, text = http_status(ip, 4191, "/metrics")
    return count_connections(text, direction)


LOG_HELPERS = ("tee", "grep", "awk")


def check_identity(
    box: containers.MeshContainer, facts: ImageFacts, name: str, namespace: str, anchor_file: Path
) -> str:
    proxy_uid = str(facts.proxy_uid)
    box.exec(["install", "-d", "-o", proxy_uid, "-m", "0700", "/tmp/meshexp-check"])
    code, out = box.exec(
        [
            "spire-agent",
            "api",
            "fetch",
            "x509",
            "-socketPath",
            image_contract.AGENT_SOCKET,
            "-write",
            "/tmp/meshexp-check",
        ],
        user=proxy_uid,
    )
    require(code == 0, f"the agent gave UID {proxy_uid} no SVID: {out.strip()[-300:]}")
    _, pem = box.exec(["cat", "/tmp/meshexp-check/svid.0.pem"], user=proxy_uid)
    box.exec(["rm", "-rf", "/tmp/meshexp-check"])
    chain = x509.load_pem_x509_certificates(pem.encode())
    names = list(chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    # Images from before the identity label carry the walk-through's names.
    wanted = workload_identity(facts.identity, facts.trust_domain, namespace, name)
    expected = wanted.spiffe_id
    # The real proxy takes a client's FIRST name as its identity in policy: it must be
    # the SPIFFE ID that policies (and the ExternalWorkload's meshTLS.identity) name.
    found = [str(name.value) for name in names]
    require(
        found[:1] == [expected] and isinstance(names[0], x509.UniformResourceIdentifier),
        f"the SVID's names are {found}; the first must be {expected}, the SPIFFE ID that "
        "the ExternalWorkload declares and policies name",
    )
    require(
        len(found) == 1,
        f"the SVID carries {found[1:]} after the SPIFFE ID: images of this version carry "
        "the SPIFFE ID alone",
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
        f"{expected}, the SVID's one name (server name {wanted.dns_name}), chain of "
        f"{len(chain)} verifies against the trust anchor alone"
    )


def check_rules(box: containers.MeshContainer, facts: ImageFacts) -> str:
    binary = f"iptables-{facts.iptables_mode}-save"
    code, rules = box.exec([binary, "-t", "nat"])
    require(code == 0, f"{binary} failed: {rules.strip()}")
    lines = [line for line in rules.splitlines() if line.startswith("-A ")]
    uid = facts.proxy_uid
    wanted = [
        "-A PREROUTING -j PROXY_INIT_REDIRECT",
        "-A OUTPUT -j PROXY_INIT_OUTPUT",
        "-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-ports 4143",
        f"-A PROXY_INIT_OUTPUT -m owner --uid-owner {uid} -j RETURN",
        "-A PROXY_INIT_OUTPUT -o lo -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-ports 4140",
    ]
    for port_list, chain in (
        (facts.ignored_ports(image_contract.INBOUND_PORTS_TO_IGNORE), "PROXY_INIT_REDIRECT"),
        (facts.ignored_ports(image_contract.OUTBOUND_PORTS_TO_IGNORE), "PROXY_INIT_OUTPUT"),
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


def processes(box: containers.MeshContainer) -> list[tuple[str, int]]:
    """(name, UID) of every process in the container, once per distinct pair, sorted."""
    return sorted({(process.name, process.uid) for process in list_processes(box.exec)})


def process_uids(box: containers.MeshContainer) -> dict[str, int]:
    """Process name -> UID (for names that run once, such as the proxy)."""
    return dict(processes(box))


def check_binaries(box: containers.MeshContainer, facts: ImageFacts) -> str:
    """Each binary is present and executable by the UID that runs it."""
    wanted = {
        image_contract.PROXY: str(facts.proxy_uid),
        image_contract.SPIRE_AGENT: str(facts.spire_uid),
        image_contract.LAUNCH: str(facts.workload_uid),
    }
    if facts.spire_topology == "demo":
        wanted[image_contract.SPIRE_SERVER] = str(facts.spire_uid)
    for path, uid in wanted.items():
        code, out = box.exec(["test", "-f", path, "-a", "-x", path], user=uid)
        require(code == 0, f"{path} is missing or not executable by UID {uid} {out}".strip())
    return ", ".join(f"{path.rsplit('/', 1)[1]} by {uid}" for path, uid in wanted.items())


def check_least_privilege(box: containers.MeshContainer, facts: ImageFacts) -> str:
    running = processes(box)
    roots = sorted(name for name, uid in running if uid == 0 and name != "meshexp-probe")
    require(roots == ["bootstrap"], f"running as root besides the bootstrap: {roots}")
    proxy_uid, spire_uid = facts.proxy_uid, facts.spire_uid
    expected = {
        "linkerd2-proxy": {proxy_uid},
        "spire-server": {spire_uid},
        "spire-agent": {spire_uid},
        # The bootstrap reads the proxy's and the agent's logs through helpers
        # of their own UIDs (tee, grep, awk).
        **{helper: {proxy_uid, spire_uid} for helper in LOG_HELPERS},
        # Docker's health check starts it as root; its first act is to become the workload.
        "meshexp-probe": {0, facts.workload_uid},
    }
    proxy = [uid for name, uid in running if name == "linkerd2-proxy"]
    require(
        proxy == [proxy_uid],
        f"the proxy runs as UID {', '.join(map(str, proxy)) or 'nothing'}, "
        f"the image declares {proxy_uid}",
    )
    for name, uid in running:
        if name in expected:
            require(uid in expected[name], f"{name} runs as UID {uid}, not {expected[name]}")
    workload_uid = facts.workload_uid
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
