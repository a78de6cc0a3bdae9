"""IPv6 never bypasses the proxy: on a dual-stack Docker network, with the real proxy.

A plaintext client asking the workload's port over IPv6 gets the proxy's hop (the
workload sees the proxy, never the client), as over IPv4; outbound IPv6 from the
workload's UID is captured by the proxy; with IPV6=off, IPv6 is refused instead.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.types
import pytest

from builder.build.image import ImageResult, build_workload_image
from builder.check.checks import check_image
from builder.check.listings import metric_series
from builder.check.live import http_status
from builder.check.report import CheckFailed, ImageFacts, InboundPolicy
from builder.check.traffic import check_ipv6
from builder.cluster import kube
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.core.net import host_port
from builder.engine import containers, docker_engine
from builder.engine.containers import MeshContainer, mesh_container, own_network
from builder.lab import Lab
from harness import faces
from harness.lab import into_lab
from harness.registration import Running, all_ready, docker_run
from tests.integration.conftest import fresh_network, started_lab

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


def test_docker_restart_captures_ipv6_again_once(
    engine, smiley_image: ImageResult, certs: Path, plain_base: str, dual_stack: str
) -> None:
    """`docker restart` keeps the container's network namespace and its rules: the
    bootstrap installs the IPv6 capture again without doubling a jump, and a client
    over IPv6 still gets the proxy's hop."""
    with mesh_container(
        image=smiley_image.reference, network=dual_stack, certs=certs, env={}
    ) as box:
        box.restart(timeout=120)
        ipv4, ipv6 = addresses(engine, box, dual_stack)
        code, rules = box.exec(["ip6tables-nft-save", "-t", "nat"])
        assert code == 0, rules
        for jump in ("-A PREROUTING -j PROXY_INIT_REDIRECT", "-A OUTPUT -j PROXY_INIT_OUTPUT"):
            assert rules.splitlines().count(jump) == 1, rules
        through_the_proxy(ask(engine, plain_base, dual_stack, ipv6), (ipv4, ipv6))


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


def test_check_passes_ipv6_through_the_proxy_and_refuses_it_when_off(
    smiley_image: ImageResult,
) -> None:
    """`check`'s IPv6 line on its dual-stack network: the answer came through the proxy
    (its inbound counter moved); with IPV6=off, a refusal."""
    for env, said in (({}, "inbound"), ({"IPV6": "off"}, "refused (IPV6=off)")):
        report = check_image(image=smiley_image.reference, env=env)
        failures = [f"{r.name}: {r.detail}" for r in report.results if not r.passed]
        assert not failures, failures
        [line] = [r for r in report.results if r.name.startswith("capture: IPv6")]
        assert line.detail.startswith("[fd"), line.detail
        assert said in line.detail, line.detail


def test_check_fails_where_ipv6_reaches_the_workload_around_the_proxy(
    smiley_image: ImageResult, certs: Path
) -> None:
    """The IPv6 line can fail: with the container's IPv6 capture taken out (as an image
    whose bootstrap only knew IPv4 would be), the workload answers a client directly."""
    facts = ImageFacts(smiley_image.labels)
    policy = InboundPolicy("all-unauthenticated")
    with (
        own_network(ipv6=True) as network,
        mesh_container(image=smiley_image.reference, network=network, certs=certs, env={}) as box,
    ):
        code, out = box.exec(["ip6tables-nft", "-t", "nat", "-F", "PREROUTING"])
        assert code == 0, out
        with pytest.raises(CheckFailed, match=r"the answer was not the workload's|did not move"):
            check_ipv6(box, facts, smiley_image.reference, policy)


@pytest.fixture(scope="module")
def dual_stack_lab(
    engine, upstream_shaped: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """The lab as `lab up --ipv6` starts it."""
    with started_lab(tmp_path_factory, "meshexp-test-lab6", ipv6=True) as running:
        yield running


def test_in_a_dual_stack_lab_face_reaches_smiley_over_mtls_at_either_address(
    dual_stack_lab: Lab, mesh_settings: Settings
) -> None:
    """smiley's ExternalWorkload lists both its addresses, and face's call to each goes
    out of face's proxy over mTLS to smiley's identity (the destination controller
    found the ExternalWorkload by either address)."""
    lab = dual_stack_lab
    started = {}
    for name in ("smiley", "face"):
        started[name] = into_lab(lab, mesh_settings, name, f"{lab.name}-w-{name}")
    smiley, face = started["smiley"], started["face"]
    ipv4, ipv6 = smiley.ips
    assert ipaddress.ip_address(ipv6) in ipaddress.ip_network(lab.addresses.ipv6_subnet)
    held = kube.get_object(
        kube.connect(lab.kubeconfig), kube.ObjectRef("ExternalWorkload", "smiley", "faces")
    )
    assert held is not None
    assert [entry["ip"] for entry in held["spec"]["workloadIPs"]] == [ipv4, ipv6]
    uid = docker_engine.image_attrs(face.image)["Config"]["Labels"]["io.meshexp.workload-uid"]
    identity = mesh_settings.identity_of("faces", "smiley").spiffe_id
    for address in (ipv4, ipv6):
        code, out = docker_engine.exec_in(
            face.name,
            [
                "bash",
                "-c",
                f"exec 3<>/dev/tcp/{address}/8000 && "
                'printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && timeout 10 cat <&3',
            ],
            user=uid,
        )
        assert code == 0, out[:300]
        assert out.startswith("HTTP/1.0 200"), out[:300]
        _, text = http_status(face.ip, 4191, "/metrics")
        series = [
            labels
            for labels, _ in metric_series(text, "tcp_open_total")
            if (labels.get("direction"), labels.get("peer")) == ("outbound", "dst")
            and labels.get("target_addr") == host_port(address, 8000)
        ]
        assert series, f"face's proxy has no outbound series to {host_port(address, 8000)}"
        assert all(s.get("tls") == "true" for s in series), series
        assert all(s.get("server_id") == identity for s in series), series


def test_the_registrar_lists_both_addresses_of_a_dual_stack_container(
    engine, dual_stack_lab: Lab, mesh_settings: Settings
) -> None:
    """The walk-through's `docker run` on the dual-stack lab's network, `register`
    beside it: its ExternalWorkload lists the container's IPv4 and IPv6 addresses, and
    the keeper (which asks the proxy on IPv4) marks it Ready."""
    lab = dual_stack_lab
    image = build_workload_image(workload=find_workload("smiley"), settings=mesh_settings)
    container = docker_run(engine, lab, "edge6", image.reference, {"WORKLOAD_NAME": "smiley6"})
    running = Running(lab, "test-ipv6")
    try:
        client = kube.connect(lab.kubeconfig)
        assert faces.wait_for(lambda: all_ready(client, ["smiley6-edge6"]), timeout=180), (
            running.lines
        )
        wanted = docker_engine.container_addresses(container.id, lab.network)
        assert len(wanted) == 2, wanted
        held = kube.get_object(client, kube.ObjectRef("ExternalWorkload", "smiley6-edge6", "faces"))
        assert held is not None
        assert tuple(entry["ip"] for entry in held["spec"]["workloadIPs"]) == wanted
        said = next(line for line in running.lines if "registered" in line)
        assert f"at {wanted[0]} and {wanted[1]}" in said, said
    finally:
        running.end()
        container.remove(force=True)


def test_where_the_engine_makes_no_ipv6_network_checks_network_is_ipv4_only(
    engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that refuses the dual-stack options (as one whose kernel has IPv6 off
    does) still gets the check its network, IPv4 only: the IPv6 line says "not tried"."""
    monkeypatch.setattr(
        containers,
        "dual_stack_options",
        lambda: {
            "enable_ipv6": True,
            "ipam": docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet="fd00::/200")]
            ),
        },
    )
    with own_network(ipv6=True) as name:
        assert docker_engine.network_subnet(name, 4)
        assert docker_engine.network_subnet(name, 6) == ""
    assert not docker_engine.network_exists(name)
