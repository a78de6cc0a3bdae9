"""IPv6 never bypasses the proxy: on a dual-stack Docker network, with the real proxy.

A plaintext client asking the workload's port over IPv6 gets the proxy's hop (the
workload sees the proxy, never the client), as over IPv4; outbound IPv6 from the
workload's UID is captured by the proxy; with IPV6=off, IPv6 is refused instead.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.types
import pytest

from builder.build.image import ImageResult
from builder.engine.containers import MeshContainer, mesh_container
from tests.integration.conftest import fresh_network

WORKLOAD_UID = "2200"  # smiley's (images/smiley.yaml)


@pytest.fixture(scope="module")
def dual_stack(engine) -> Iterator[str]:
    """A bridge network with an IPv6 subnet of its own (IPv4 from Docker's pools)."""
    subnet = f"fd00:{uuid.uuid4().int % 0xFFFF:x}:{uuid.uuid4().int % 0xFFFF:x}::/64"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    with fresh_network(engine, enable_ipv6=True, ipam=ipam) as name:
        yield name


def addresses(engine, container: MeshContainer, network: str) -> tuple[str, str]:
    """(IPv4, IPv6) of the container on `network`."""
    found = engine.containers.get(container.id).attrs["NetworkSettings"]["Networks"][network]
    return found["IPAddress"], found["GlobalIPv6Address"]


def ask(engine, base: str, network: str, host: str) -> str:
    """A plaintext HTTP GET to host:8000 from a plain container on `network`: the answer
    (or the shell's error), and the asking container's own addresses after `#`."""
    script = (
        f"hostname -I | sed 's/^/# /'; exec 3<>/dev/tcp/{host}/8000 || exit 0; "
        # The closing echo ends the answer's last line: the log keeps only whole lines.
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; timeout 10 cat <&3; echo"
    )
    output = engine.containers.run(
        base, ["bash", "-c", script], network=network, remove=True, stderr=True
    )
    return str(output.decode(errors="replace"))


def client_address(answer: str) -> str:
    match = re.search(r'"client_address":"\[?([^"\]]*)\]?:\d+"', answer)
    assert match, answer
    return match[1]


def through_the_proxy(answer: str, own: tuple[str, str]) -> None:
    """The workload answered, and saw the proxy's connection (from the container's own
    address), never the asking client's."""
    assert " 200 " in answer.split("\n", 2)[1], answer
    clients = answer.split("\n", 1)[0].removeprefix("# ").split()
    seen = client_address(answer)
    assert seen not in clients, (seen, clients)
    assert seen in (*own, "127.0.0.1", "::1"), seen


@pytest.fixture(scope="module")
def smiley_v6(
    engine, smiley_image: ImageResult, certs: Path, dual_stack: str
) -> Iterator[dict[str, Any]]:
    with mesh_container(
        image=smiley_image.reference, network=dual_stack, certs=certs, env={}
    ) as box:
        ipv4, ipv6 = addresses(engine, box, dual_stack)
        assert ipv6, "the network gave the container no IPv6 address"
        yield {"box": box, "ipv4": ipv4, "ipv6": ipv6}


def test_the_bootstrap_says_ipv6_is_captured(smiley_v6: dict[str, Any]) -> None:
    logs = smiley_v6["box"].logs()
    [line] = [line for line in logs.splitlines() if "bootstrap: IPv6:" in line]
    assert f"captured as IPv4 (ip6tables-nft) for {smiley_v6['ipv6']}" in line, line


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_plaintext_client_gets_the_proxys_hop_on_either_family(
    engine, plain_base: str, dual_stack: str, smiley_v6: dict[str, Any], family: str
) -> None:
    """The workload answers, but sees the proxy's connection (from its own address),
    never the client: the connection went through the proxy."""
    host = smiley_v6[family]
    answer = ask(engine, plain_base, dual_stack, host)
    through_the_proxy(answer, (smiley_v6["ipv4"], smiley_v6["ipv6"]))


def test_outbound_ipv6_from_the_workload_is_captured(smiley_v6: dict[str, Any]) -> None:
    """The workload's UID connecting out over IPv6, to an address of the network where no
    host exists: the connection is made all the same, to the proxy's outbound listener
    ([::1]:4140), which holds it (no control plane answers here); the nat table says why."""
    box = smiley_v6["box"]
    nobody = smiley_v6["ipv6"].rsplit(":", 1)[0] + ":fffe"
    code, out = box.exec(
        [
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/{nobody}/9999 && echo connected && "
            "ss -Htn state established '( sport = :4140 )'",
        ],
        user=WORKLOAD_UID,
    )
    assert code == 0, out
    assert "connected" in out, out
    assert "[::1]:4140" in out, out
    code, rules = box.exec(["ip6tables-nft-save", "-t", "nat"])
    assert code == 0, rules
    assert "-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-ports 4140" in rules, rules
    assert "-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -j RETURN" in rules, rules


def test_with_ipv6_off_it_is_refused(
    engine, smiley_image: ImageResult, certs: Path, plain_base: str, dual_stack: str
) -> None:
    with mesh_container(
        image=smiley_image.reference, network=dual_stack, certs=certs, env={"IPV6": "off"}
    ) as box:
        ipv4, ipv6 = addresses(engine, box, dual_stack)
        assert "IPv6: off (IPV6=off)" in box.logs()
        refused = ask(engine, plain_base, dual_stack, ipv6)
        assert "client_address" not in refused, refused
        assert "refused" in refused.lower() or "reset" in refused.lower(), refused
        through_the_proxy(ask(engine, plain_base, dual_stack, ipv4), (ipv4, ipv6))


def test_a_bad_ipv6_setting_is_one_line_and_exit_64(
    engine, smiley_image: ImageResult, certs: Path, dual_stack: str
) -> None:
    container = engine.containers.run(
        smiley_image.reference,
        network=dual_stack,
        cap_add=["NET_ADMIN"],
        volumes={str(certs): {"bind": "/opt/spire/certs", "mode": "ro"}},
        environment={"WORKLOAD_NAME": "smiley", "IPV6": "sometimes"},
        detach=True,
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 64
        logs = container.logs().decode()
        assert "IPV6=sometimes is not capture" in logs, logs
        [line] = [line for line in logs.splitlines() if "ERROR" in line]
        assert "IPV6=sometimes" in line
    finally:
        container.remove(force=True)
