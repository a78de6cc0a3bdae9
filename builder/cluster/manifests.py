"""`meshexp-build manifests`: the ExternalWorkload, its Service and the Ready status patch.

Since Linkerd 2.16 the ExternalWorkload's status is a subresource that
`kubectl apply` ignores, so Ready goes out as a separate patch; for 2.15 it is
inline. Workload IPs are checked here because the CRD checks nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.config.identity import WorkloadIdentity
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.config.validation import check_dns_label, check_ip
from builder.core.errors import MeshexpError


@dataclass(frozen=True)
class Manifests:
    external_workload: dict[str, Any]
    service: dict[str, Any]
    status_patch: dict[str, Any] | None
    patch_command: str | None
    authentication: dict[str, Any] | None = None

    def yaml(self) -> str:
        documents = [self.external_workload, self.service]
        if self.authentication is not None:
            documents.append(self.authentication)
        return yaml.safe_dump_all(documents, sort_keys=False)


def mesh_tls_authentication(
    identity: WorkloadIdentity, name: str, namespace: str
) -> dict[str, Any]:
    """A MeshTLSAuthentication that an AuthorizationPolicy can name to admit this
    workload: it lists the SVID's SPIFFE ID, the name the server-side proxy identifies
    the client by (builder.config.identity).
    """
    return {
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "MeshTLSAuthentication",
        "metadata": {
            "name": f"{name}-identity",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "meshexp-build"},
        },
        "spec": {"identities": identity.policy_names},
    }


def check_workload_ips(ips: list[str], settings: Settings) -> list[str]:
    """Parse the IPs: at most the version's maximum, one per address family."""
    if not ips:
        raise MeshexpError("give the workload's address with --ip (e.g. --ip 172.18.0.5)")
    parsed = [check_ip(text, "--ip") for text in ips]
    limit = settings.facts.max_workload_ips
    if len(parsed) > limit:
        raise MeshexpError(
            f"--ip: Linkerd {settings.linkerd_version} allows at most {limit} "
            f"workload IP(s), got {len(parsed)}"
        )
    families = [address.version for address in parsed]
    if len(set(families)) != len(families):
        raise MeshexpError("--ip: give at most one IPv4 and one IPv6 address")
    for address in parsed:
        if address.is_unspecified or address.is_multicast or address.is_loopback:
            raise MeshexpError(
                f"--ip: {address} cannot be a workload address (it is "
                "unspecified, multicast or loopback)"
            )
    return [str(ipaddress.ip_address(address)) for address in parsed]


def listed_addresses(found: Sequence[str], most: int) -> tuple[list[str], list[str]]:
    """Of a container's addresses (IPv4 first), those its ExternalWorkload lists (a
    release takes `most`: one before 2.17, one per family since) and those left out."""
    return list(found[:most]), list(found[most:])


def left_out_line(left_out: Sequence[str], linkerd_version: str) -> str:
    """What the output says of addresses an ExternalWorkload could not list."""
    return (
        f"not listed: {', '.join(left_out)} (Linkerd {linkerd_version} takes one workload "
        "IP; 2.17 and later take one per family, IPv4 and IPv6)"
    )


def status_patch_args(
    name: str, namespace: str, patch: dict[str, Any] | None = None, patch_file: Path | None = None
) -> list[str]:
    """kubectl arguments that set the status subresource (Linkerd 2.16+), inline or from a file."""
    source = (
        ["--patch-file", str(patch_file)]
        if patch_file is not None
        else ["-p", json.dumps(patch, separators=(",", ":"))]
    )
    return [
        "patch",
        "externalworkload",
        name,
        "-n",
        namespace,
        "--subresource",
        "status",
        "--type",
        "merge",
        *source,
    ]


def ready_condition() -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Started",
                "message": "started by meshexp-build",
            }
        ]
    }


def not_ready_condition(reason: str, message: str = "") -> dict[str, Any]:
    """A status whose Ready condition is False, for `reason` (ContainerStopped, ...)."""
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": reason,
                "message": message or f"marked not ready by meshexp-build: {reason}",
            }
        ]
    }


PortTriple = tuple[str, int, str]  # name, port, protocol


# Ports Linkerd's proxies carry as opaque TCP (no protocol detection): a client's proxy
# connects at once, as the workload's own proxy is told to take them.
OPAQUE_PORTS = "config.linkerd.io/opaque-ports"


def opaque_annotation(opaque: tuple[int, ...]) -> dict[str, dict[str, str]]:
    """The metadata that marks `opaque` ports, where there are any."""
    return {"annotations": {OPAQUE_PORTS: ",".join(map(str, opaque))}} if opaque else {}


def opaque_ports_of(probes: tuple[str, ...]) -> tuple[int, ...]:
    """The ports an image's PORT_PROTOCOLS label (PORT=PROTOCOL[:METHOD],...) says are
    opaque."""
    found = []
    for item in probes:
        port, _, protocol = item.partition("=")
        if protocol == "opaque" and port.isdigit():
            found.append(int(port))
    return tuple(found)


def external_workload_document(
    name: str,
    namespace: str,
    labels: dict[str, str],
    identity: WorkloadIdentity,
    addresses: list[str],
    ports: list[PortTriple],
    opaque: tuple[int, ...] = (),
) -> dict[str, Any]:
    """An ExternalWorkload: the SVID's names, the addresses, the ports (names from the
    catalog, which the Service's targetPort names), the opaque ones annotated."""
    return {
        "apiVersion": "workload.linkerd.io/v1beta1",
        "kind": "ExternalWorkload",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            **opaque_annotation(opaque),
        },
        "spec": {
            "meshTLS": {"identity": identity.spiffe_id, "serverName": identity.dns_name},
            "workloadIPs": [{"ip": address} for address in addresses],
            "ports": [
                {"name": port_name, "port": port, "protocol": protocol}
                for port_name, port, protocol in ports
            ],
        },
    }


def service_document(
    name: str,
    namespace: str,
    labels: dict[str, str],
    ports: list[PortTriple],
    service_port: int | None = None,
    selector: dict[str, str] | None = None,
    opaque: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A ClusterIP Service selecting `app: NAME` (or `selector`); `service_port` changes
    the first port (the Faces chart's Services listen on 80), whose targetPort still
    names the workload's port. Opaque ports are annotated (by the Service's port)."""
    service_ports = [
        service_port if service_port and index == 0 else port
        for index, (_, port, _) in enumerate(ports)
    ]
    opaque_here = tuple(
        number for number, (_, port, _) in zip(service_ports, ports, strict=True) if port in opaque
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            **opaque_annotation(opaque_here),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector or {"app": name},
            "ports": [
                {
                    "name": port_name,
                    "port": service_port if service_port and index == 0 else port,
                    "targetPort": port_name,
                    "protocol": protocol,
                }
                for index, (port_name, port, protocol) in enumerate(ports)
            ],
        },
    }


def build_manifests(
    *,
    workload: Workload,
    settings: Settings,
    ips: list[str],
    name: str | None = None,
    namespace: str | None = None,
    service_port: int | None = None,
    authentication: bool = False,
) -> Manifests:
    """The ExternalWorkload and Service for one running instance of `workload`
    (and with `authentication`, a MeshTLSAuthentication naming its identity).

    `service_port` changes the Service's first port (the Faces chart's Services
    listen on 80); its targetPort still names the workload's declared port.
    """
    name = check_dns_label(workload.name if name is None else name, "--name")
    namespace = check_dns_label(
        workload.namespace if namespace is None else namespace, "--namespace"
    )
    addresses = check_workload_ips(ips, settings)
    labels = {"app": name, "app.kubernetes.io/managed-by": "meshexp-build"}
    identity = settings.identity_of(namespace, name)
    auth = mesh_tls_authentication(identity, name, namespace) if authentication else None
    ports = [(p.name, p.port, str(p.protocol)) for p in workload.ports]
    opaque = tuple(p.port for p in workload.ports if p.app_protocol == "opaque")
    external = external_workload_document(
        name, namespace, labels, identity, addresses, ports, opaque
    )
    service = service_document(name, namespace, labels, ports, service_port, opaque=opaque)
    if not settings.facts.status_subresource:
        external["status"] = ready_condition()
        return Manifests(external, service, None, None, auth)
    patch = {"status": ready_condition()}
    command = " ".join(
        shlex.quote(word) for word in ["kubectl", *status_patch_args(name, namespace, patch)]
    )
    return Manifests(external, service, patch, command, auth)
