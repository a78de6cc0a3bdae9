"""What the checks read from a running container, parsed: Prometheus metrics (with
prometheus_client's parser), `ss` socket listings and the process listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from builder.check.report import Exec, require
from builder.core import image_contract

ADMIN_PORT = "4191"


def metric_series(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Each sample of metric `name` in Prometheus text: its labels and its value.

    prometheus_client's parser reads the exposition format as Prometheus does
    (escapes, timestamps, `}` inside a label value); text it cannot read is a
    ValueError, which a check reports as its failure.
    """
    return [
        (dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name
    ]


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
        name = "bootstrap" if image_contract.BOOTSTRAP in words[:2] else words[0].rsplit("/", 1)[-1]
        if name not in LISTING_HELPERS:
            found.append(Process(name, int(uid), int(rss)))
    return found


def list_processes(run: Exec) -> list[Process]:
    """Every process in a container, through `run` (an exec as root)."""
    code, out = run(["bash", "-c", PROCESS_LISTING], "0")
    require(code == 0, f"could not list the container's processes (exit {code}): {out[-300:]}")
    return parse_processes(out)
