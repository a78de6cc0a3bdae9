"""The lab itself: its name, state folder, network and fixed addresses, its inputs
(Linkerd's programs), its errors, and how each of its containers is started.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.core import image_contract
from builder.core.errors import MeshexpError
from builder.engine import docker_engine, lab_containers

LABEL = image_contract.LAB


RUNTIME_IMAGE = "meshexp/lab-runtime:bookworm"


NODE_NAME = "meshexp-lab"


PROXY_UID, CONTROLLER_UID = 2102, 2103


APISERVER_PORT = 6443


READY_TIMEOUT = 120.0


# Kinds `linkerd install` renders that need a kubelet, a webhook server or a
# CronJob controller: not applied in a lab.
SKIPPED_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "CronJob")


# The control-plane pods the lab runs, from the Deployments of these names.
SOURCES_FILE = "sources.json"  # the control plane's programs, as `lab up` was given them
PODS = {
    "identity": ("linkerd-identity", "linkerd-identity"),
    "destination": ("linkerd-destination", "linkerd-destination"),
}


class LabError(MeshexpError):
    """The lab's inputs are wrong (programs, state folder, linkerd install)."""


class LabNotUp(LabError):
    """A part of the lab started but did not come up (exit code 5, as `run`'s)."""

    exit_code = 5


@dataclass(frozen=True)
class LabSources:
    """The control plane's programs (offline: files; the lab runs them as they are)."""

    controller: Path
    policy_controller: Path
    proxy_identity: Path
    proxy: Path
    linkerd: Path

    def check(self) -> LabSources:
        """Each program exists; the same, with absolute paths (for the engine's binds)."""
        for name, path in vars(self).items():
            if not Path(path).is_file():
                raise LabError(
                    f"lab: the {name.replace('_', '-')} program {path} is not a file; give it "
                    f"with --{name.replace('_', '-')} FILE (Linkerd's own, built from source "
                    "or copied out of its image)"
                )
        return LabSources(**{name: Path(path).resolve() for name, path in vars(self).items()})

    def save(self, folder: Path) -> None:
        """Kept with the lab's state, for what restarts its pods later (`lab certs`)."""
        state = {name: str(path) for name, path in vars(self).items()}
        (folder / SOURCES_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> LabSources:
        try:
            state = json.loads((folder / SOURCES_FILE).read_text())
            return cls(**{name: Path(path) for name, path in state.items()}).check()
        except (OSError, ValueError, TypeError):
            raise LabError(
                f"lab: {folder / SOURCES_FILE} is missing or unreadable: the lab was started "
                "by an older meshexp-build; start it again with `meshexp-build lab up`"
            ) from None


@dataclass(frozen=True)
class Addresses:
    """Fixed addresses on the lab's /24; the engine hands out only the upper half. A
    dual-stack lab has an IPv6 /64 too, from which the engine hands out addresses."""

    subnet: str
    ipv6_subnet: str = ""

    def host(self, number: int) -> str:
        return str(ipaddress.ip_network(self.subnet)[number])

    @property
    def dynamic(self) -> str:
        network = ipaddress.ip_network(self.subnet)
        return str(ipaddress.ip_network(f"{network[128]}/25"))

    @property
    def gateway(self) -> str:
        return self.host(1)

    @property
    def apiserver(self) -> str:
        return self.host(2)

    @property
    def dns(self) -> str:
        return self.host(3)

    @property
    def pods(self) -> dict[str, str]:
        return {"identity": self.host(10), "destination": self.host(11)}


@dataclass(frozen=True)
class Lab:
    """A running lab: where things are."""

    name: str
    folder: Path
    network: str
    addresses: Addresses
    kubeconfig: Path

    @property
    def dns(self) -> str:
        return self.addresses.dns

    def save(self) -> None:
        state = {
            "name": self.name,
            "network": self.network,
            "subnet": self.addresses.subnet,
            "ipv6_subnet": self.addresses.ipv6_subnet,
        }
        (self.folder / "lab.json").write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Lab:
        try:
            state = json.loads((folder / "lab.json").read_text())
        except (OSError, ValueError):
            raise LabError(
                f"lab: no lab in {folder} (its lab.json is missing); start one with "
                "`meshexp-build lab up`"
            ) from None
        return cls(
            state["name"],
            folder,
            state["network"],
            Addresses(state["subnet"], str(state.get("ipv6_subnet") or "")),
            folder / "kubeconfig",
        )


def pick_subnet(used: list[str]) -> str:
    """A /24 in 10.213.0.0/16 that no engine network overlaps."""
    taken = [ipaddress.ip_network(subnet) for subnet in used]
    for candidate in ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in taken):
            return str(candidate)
    raise LabError("lab: no free /24 left in 10.213.0.0/16 for the lab network")


def ipv6_subnet_beside(subnet: str, used: list[str]) -> str:
    """The dual-stack lab's IPv6 /64, named after its IPv4 /24 (10.213.N.0/24 gives
    fd00:10:213:N::/64, inside Linkerd's default cluster networks' fd00::/8)."""
    octets = str(ipaddress.ip_network(subnet).network_address).split(".")
    candidate = ipaddress.ip_network(f"fd00:{octets[0]}:{octets[1]}:{octets[2]}::/64")
    taken = [ipaddress.ip_network(found) for found in used]
    if any(candidate.overlaps(other) for other in taken if other.version == 6):
        raise LabError(
            f"lab: {candidate} is held by another engine network; remove it "
            "(docker network ls) or start the lab without --ipv6"
        )
    return str(candidate)


def ensure_runtime_image() -> None:
    """The offline base plus iptables and dnsmasq (Debian's), built once."""
    if docker_engine.image_exists(RUNTIME_IMAGE):
        return
    from builder.build.base_image import build_base

    build_base(reference=OFFLINE_BASE_IMAGE)  # reused when present and current
    with tempfile.TemporaryDirectory(prefix="meshexp-lab-runtime-") as scratch:
        (Path(scratch) / "Dockerfile").write_text(
            f"FROM {OFFLINE_BASE_IMAGE}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            "iptables dnsmasq-base && rm -rf /var/lib/apt/lists/*\n"
        )
        docker_engine.build_image(context=Path(scratch), tag=RUNTIME_IMAGE, platform="linux/amd64")


def lab_container(lab: Lab, role: str, ip: str, command: list[str], **extra: Any) -> str:
    spec = lab_containers.LabContainer(
        name=f"{lab.name}-{role}",
        image=RUNTIME_IMAGE,
        network=lab.network,
        ip=ip,
        command=command,
        labels={LABEL: lab.name, f"{LABEL}.role": role},
        **extra,
    )
    return lab_containers.start_lab_container(spec)
