"""Parsing what the kernel shows inside a container, for the outbound capture check."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.check.listings import count_connections, metric_series, parse_processes, parse_sockets
from builder.check.report import CheckFailed, InboundPolicy
from builder.check.traffic import landed_on_proxy

# `ss -tneH state established` in a smiley container with the real proxy, while
# the workload UID (2200) held a connection to the peer 172.23.0.1:39998.
SS_HELD = """\
0      0       127.0.0.1:18081  127.0.0.1:51034 timer:(keepalive,2.032ms,0) uid:2103 ino:90771 sk:2 cgroup:unreachable:136 <->
0      0       127.0.0.1:4140  172.23.0.2:54690 timer:(keepalive,119min,0) uid:2102 ino:99763 sk:5 cgroup:unreachable:136 <->
0      0       127.0.0.1:51034  127.0.0.1:18081 timer:(keepalive,119min,0) uid:2103 ino:90770 sk:4 cgroup:unreachable:136 <->
0      0      172.23.0.2:54690 172.23.0.1:39998 uid:2200 ino:99762 sk:6 cgroup:unreachable:136 <->
answer:
"""  # noqa: E501


def test_sockets_are_read_with_their_owner_uid() -> None:
    sockets = parse_sockets(SS_HELD)
    assert len(sockets) == 4  # the answer: line is not a socket
    assert {s.uid for s in sockets} == {2102, 2103, 2200}
    assert sockets[3].local == "172.23.0.2:54690"
    assert sockets[3].peer == "172.23.0.1:39998"


def test_a_redirected_connection_lands_on_the_proxy() -> None:
    landed = landed_on_proxy(parse_sockets(SS_HELD), "172.23.0.1:39998", 2102)
    assert landed == "127.0.0.1:4140"


def test_a_connection_that_skipped_the_proxy_fails_with_the_reason() -> None:
    direct = (
        "0 0 172.23.0.2:54690 172.23.0.1:39998 uid:2200 ino:1 <->\n"
        "0 0 172.23.0.2:40000 172.23.0.1:39998 uid:2102 ino:2 <->\n"
    )
    with pytest.raises(CheckFailed, match="no socket in the container received"):
        landed_on_proxy(parse_sockets(direct), "172.23.0.1:39998", 2102)
    # Landed on the outbound port, but on a socket of another UID than the proxy's.
    elsewhere = direct + "0 0 127.0.0.1:4140 172.23.0.2:54690 uid:0 ino:3 <->\n"
    with pytest.raises(CheckFailed, match=r"a socket of UID 0, not of the proxy's UID 2102"):
        landed_on_proxy(parse_sockets(elsewhere), "172.23.0.1:39998", 2102)
    # Landed on another port: a bypass.
    other = direct + "0 0 127.0.0.1:8000 172.23.0.2:54690 uid:2200 ino:3 <->\n"
    with pytest.raises(CheckFailed, match=r"bypassed the proxy: it landed on 127\.0\.0\.1:8000"):
        landed_on_proxy(parse_sockets(other), "172.23.0.1:39998", 2102)


@pytest.mark.parametrize(
    ("policy", "networks", "subnet", "admitted"),
    [
        ("all-unauthenticated", "", "172.18.0.0/16", True),
        ("audit", "", "172.18.0.0/16", True),
        ("deny", "", "172.18.0.0/16", False),
        ("all-authenticated", "", "172.18.0.0/16", False),
        ("cluster-unauthenticated", "172.16.0.0/12", "172.18.0.0/16", True),
        ("cluster-unauthenticated", "10.0.0.0/8", "172.18.0.0/16", False),
        ("cluster-unauthenticated", "fd00::/8,172.18.0.0/24", "172.18.0.0/16", False),
        ("cluster-authenticated", "172.16.0.0/12", "172.18.0.0/16", False),
    ],
)
def test_which_plaintext_clients_a_default_policy_admits(
    policy: str, networks: str, subnet: str, admitted: bool
) -> None:
    inbound = InboundPolicy(policy, tuple(n for n in networks.split(",") if n))
    assert inbound.admits(subnet) is admitted


# /metrics of the real proxy in a smiley container after one request to port 8000
# and two scrapes of the admin port.
REAL_METRICS = """\
# TYPE tcp_open_total counter
tcp_open_total{direction="inbound",peer="src",target_addr="172.31.0.2:8000",target_ip="172.31.0.2",target_port="8000",tls="no_identity",no_tls_reason="no_tls_from_remote",srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="8000"} 1
tcp_open_total{direction="inbound",peer="src",target_addr="0.0.0.0:4191",target_ip="0.0.0.0",target_port="4191",tls="no_identity",no_tls_reason="no_tls_from_remote",srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="4191"} 2
tcp_open_total{direction="inbound",peer="dst",tls="no_identity",no_tls_reason="loopback"} 1
"""  # noqa: E501
STANDIN_METRICS = """\
tcp_open_total{direction="inbound",peer="src"} 3
tcp_open_total{direction="outbound",peer="src"} 2
"""


def test_connections_count_client_connections_only() -> None:
    assert count_connections(REAL_METRICS, "inbound") == 1  # not the scrapes, not the hop
    assert count_connections(REAL_METRICS, "outbound") == 0
    assert count_connections(STANDIN_METRICS, "inbound") == 3
    assert count_connections(STANDIN_METRICS, "outbound") == 2


# PROCESS_LISTING inside a healthy smiley container (real proxy), shortened: the
# agent's log helper is an awk whose program spans lines, made one line here.
LISTING = """\
0 3412 /opt/meshexp/bin/bash /opt/meshexp/bin/bootstrap
2103 91540 spire-server run -config /opt/meshexp/etc/spire/server.conf
2103 1890 awk -W interactive -v id=spiffe://root.linkerd.cluster.local/smiley { print > logfile }   !/level=info/ { print; fflush() }
2103 53600 spire-agent run -config /opt/meshexp/etc/spire/agent.conf -expandEnv
2102 1480 tee -p /dev/fd/63
2102 19180 /opt/meshexp/bin/linkerd2-proxy
2200 5900 /opt/workload/bin/smiley -port 8000
0 2100 bash -c for p in /proc/[0-9]*; do ...
0 900 tr \\0\\n
not a process line
"""  # noqa: E501


def test_the_process_listing_names_each_process_with_its_uid_and_memory() -> None:
    found = parse_processes(LISTING)
    assert [(p.name, p.uid) for p in found] == [
        ("bootstrap", 0),
        ("spire-server", 2103),
        ("awk", 2103),
        ("spire-agent", 2103),
        ("tee", 2102),
        ("linkerd2-proxy", 2102),
        ("smiley", 2200),
    ]  # the listing's own bash and tr are not the container's
    assert found[-2].rss_kib == 19180


def test_metric_series_reads_the_real_proxys_exposition() -> None:
    """Recorded from the real linkerd2-proxy's /metrics (tests/unit/data/README.md)."""
    text = (Path(__file__).parent / "data" / "real-proxy-metrics.txt").read_text()
    opened = metric_series(text, "tcp_open_total")
    assert [labels["direction"] for labels, _ in opened] == ["inbound"]
    assert opened[0][1] == 1.0
    assert opened[0][0]["srv_name"] == "all-unauthenticated"
    assert metric_series(text, "no_such_metric") == []


def test_metric_series_reads_timestamps_escapes_and_braces_in_values() -> None:
    text = (
        "# TYPE request_total counter\n"
        'request_total{route="/a}b",note="say \\"hi\\""} 3 1700000000000\n'
        'request_total{route="/c"} 4.5\n'
    )
    series = metric_series(text, "request_total")
    assert series == [({"route": "/a}b", "note": 'say "hi"'}, 3.0), ({"route": "/c"}, 4.5)]
