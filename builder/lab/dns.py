"""The lab's DNS: dnsmasq answering Linkerd's Service names with the pods' addresses and
workload Services' names with their ClusterIPs.
"""

from __future__ import annotations

import contextlib
import json

from builder.engine import lab_containers
from builder.lab.layout import Lab, lab_container


def dns_records(lab: Lab, extra: dict[str, str]) -> dict[str, str]:
    """Name -> address: Linkerd's Service names (the pods), then `extra`."""
    pods = lab.addresses.pods
    records = {
        f"{service}.linkerd.svc.cluster.local": pods[role]
        for service, role in (
            ("linkerd-identity", "identity"),
            ("linkerd-identity-headless", "identity"),
            ("linkerd-dst", "destination"),
            ("linkerd-dst-headless", "destination"),
            ("linkerd-policy", "destination"),
            ("linkerd-policy-validator", "destination"),
            ("linkerd-sp-validator", "destination"),
        )
    }
    return {**records, **extra}


def write_dns(lab: Lab, extra: dict[str, str]) -> None:
    hosts = lab.folder / "dns" / "hosts"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    known = read_dns_extra(lab)
    known.update(extra)
    lines = [f"{ip} {name}" for name, ip in sorted(dns_records(lab, known).items())]
    hosts.write_text("\n".join(lines) + "\n")
    (lab.folder / "dns" / "extra.json").write_text(json.dumps(known, indent=2) + "\n")


def read_dns_extra(lab: Lab) -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((lab.folder / "dns" / "extra.json").read_text()))
    return {}


def add_dns_records(lab: Lab, records: dict[str, str]) -> None:
    """Add names (e.g. a workload Service's) and have dnsmasq read them again."""
    write_dns(lab, records)
    lab_containers.signal_container(f"{lab.name}-dns", "SIGHUP")


def start_dns(lab: Lab) -> None:
    folder = lab.folder / "dns"
    command = [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        f"--addn-hosts={folder}/hosts",
        "--user=root",
        "--log-facility=-",
    ]
    lab_container(lab, "dns", lab.dns, command, binds={str(folder): f"{folder}:ro"})
