"""The capture checks: inbound through the proxy in each port's protocol (the answer must
match the workload's own), refusals by the default policy, and outbound landing on the proxy.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from builder.check.listings import Socket, parse_sockets
from builder.check.live import tcp_open_total
from builder.check.probes import PortProbe, ProbeResult
from builder.check.report import Exec, ImageFacts, InboundPolicy, require
from builder.core import image_contract, wait
from builder.engine import containers, docker_engine


def http_probe(port: int, host: str = "") -> str:
    """A bash line that sends GET / to HOST:PORT and prints the answer (no curl needed)."""
    return PortProbe(port).script(host or "127.0.0.1")


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def port_probes(facts: ImageFacts) -> list[PortProbe]:
    return PortProbe.from_label(",".join(facts.probes) or None, facts.port_numbers)


def check_inbound(
    box: containers.MeshContainer,
    facts: ImageFacts,
    image: str,
    policy: InboundPolicy,
    host: str = "",
) -> str:
    """A client container on the network reaches each workload port (at `host`, else
    the container's IPv4 address) through the proxy, speaking the port's protocol, or is
    refused exactly as the default policy says.
    """
    host = host or box.ip
    family = 6 if ":" in host else 4
    admitted = policy.admits(docker_engine.network_subnet(box.network, family))
    lines = []
    for probe in port_probes(facts):
        before = tcp_open_total(box.ip, "inbound") if admitted else None
        code, output = client_probe(image, box.network, probe.script(host))
        result = probe.read(output)
        if admitted:
            require(result.answered, f"{probe.describe()}: {result.summary} (exit {code})")
            after = inbound_after(box.ip, before)
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


def check_ipv6(
    box: containers.MeshContainer, facts: ImageFacts, image: str, policy: InboundPolicy
) -> str:
    """Over IPv6 (the check's network is dual-stack where the engine can make one), a
    plaintext client reaches each workload port only through the proxy, as over IPv4,
    or, with IPV6=off, not at all: never the workload unmeshed."""
    found = docker_engine.container_addresses(box.id, box.network)
    ipv6 = next((address for address in found if ":" in address), "")
    if not ipv6:
        return (
            "not tried: the engine gave the container no IPv6 address (it made no dual-stack "
            "network); where a network has IPv6, the bootstrap captures it or refuses it"
        )
    if image_contract.IPV6_OFF_LINE not in box.logs():
        return f"[{ipv6}]: " + check_inbound(box, facts, image, policy, ipv6)
    lines = []
    for probe in port_probes(facts):
        code, output = client_probe(image, box.network, probe.script(ipv6))
        result = probe.read(output)
        local = local_answer(box, facts, probe)
        require(
            not result.answered and result.signature != local.signature,
            f"IPV6=off, yet a plaintext client on [{ipv6}] {probe.describe()} got: "
            f"{result.summary} (exit {code})",
        )
        lines.append(f"[{ipv6}] {probe.describe()}: refused (IPV6=off): {result.summary}")
    return "; ".join(lines)


def client_probe(image: str, network: str, script: str) -> tuple[int, str]:
    """A client container of the image itself (its bash and tools are the mesh's, so
    any image of ours has them) on the network, as nobody: exit code and output."""
    return docker_engine.run_once(
        image,
        ["-c", script],
        network=network,
        entrypoint=image_contract.BASH,
        user="65534",
        environment=image_contract.EXEC_ENVIRONMENT,
    )


def inbound_after(ip: str, before: int | None) -> int:
    """The proxy's inbound counter once it has moved past `before` (the proxy counts a
    connection it had to detect the protocol of, an opaque one, when it is done with
    it: a moment after the client), or as it stands after a few seconds."""

    def moved() -> int | wait.NotYet:
        now = tcp_open_total(ip, "inbound")
        return now if before is None or now > before else wait.NotYet(f"still {now}")

    try:
        return wait.until(moved, timeout=COUNTER_SECONDS, interval=0.2)
    except wait.TimedOut:
        return tcp_open_total(ip, "inbound")


COUNTER_SECONDS = 5.0  # how long the inbound counter may take to move


def local_answer(box: containers.MeshContainer, facts: ImageFacts, probe: PortProbe) -> ProbeResult:
    """The same probe from inside, as the workload's UID to 127.0.0.1 (not captured):
    the workload's own answer.
    """
    _, output = box.exec(["bash", "-c", probe.script()], user=str(facts.workload_uid))
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
        answer, sockets = outbound_connection(box.exec, str(facts.workload_uid), peer)
        proxy_uid = facts.proxy_uid
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
        own_answer, own_sockets = outbound_connection(box.exec, str(facts.proxy_uid), peer)
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
