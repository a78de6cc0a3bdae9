"""Linkerd's objects as `linkerd install` renders them with the lab's trust anchor, what
the lab reads from them, and the EndpointSlices no controller-manager makes in a lab.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from builder.cluster import kube
from builder.cluster.certs import create_certs
from builder.core import process
from builder.lab.layout import NODE_NAME, PODS, Lab, LabError


def linkerd_objects(linkerd: Path, lab: Lab) -> list[dict[str, Any]]:
    """`linkerd install` with the lab's own trust anchor and issuer."""
    certs = lab.folder / "certs"
    if not (certs / "issuer.key").is_file():
        create_certs(folder=certs)
    rendered = process.run(
        [
            linkerd,
            "install",
            "--ignore-cluster",
            "--identity-trust-anchors-file",
            certs / "ca.crt",
            "--identity-issuer-certificate-file",
            certs / "issuer.crt",
            "--identity-issuer-key-file",
            certs / "issuer.key",
        ],
        what="lab: linkerd install",
        error=LabError,
    )
    return [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]


def find_object(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in objects:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise LabError(f"lab: `linkerd install` rendered no {kind} {name}")


def object_data(doc: dict[str, Any], key: str) -> bytes:
    if key in (doc.get("stringData") or {}):
        return str(doc["stringData"][key]).encode()
    value = (doc.get("data") or {})[key]
    return base64.b64decode(value) if doc["kind"] == "Secret" else str(value).encode()


def endpoint_slices(client: Any, lab: Lab, objects: list[dict[str, Any]]) -> None:
    """EndpointSlices for Linkerd's Services (no controller-manager makes them)."""
    pods = {
        role: (f"{PODS[role][0]}-lab", find_object(objects, "Deployment", PODS[role][0]))
        for role in PODS
    }
    slices = []
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"].get("selector") or {}
        for role, (pod_name, deployment) in pods.items():
            labels = deployment["spec"]["template"]["metadata"].get("labels", {})
            if selector and selector.items() <= labels.items():
                slices.append(
                    endpoint_slice(service, role, pod_name, deployment, lab.addresses.pods[role])
                )
    kube.apply_documents(client, slices)


def endpoint_slice(
    service: dict[str, Any], role: str, pod: str, deployment: dict[str, Any], ip: str
) -> dict[str, Any]:
    named = {
        port["name"]: port["containerPort"]
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }
    ports = []
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        number = named.get(target, target) if isinstance(target, str) else target
        ports.append({"name": port.get("name", ""), "port": int(number), "protocol": "TCP"})
    name = service["metadata"]["name"]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-lab",
            "namespace": "linkerd",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True},
                "nodeName": NODE_NAME,
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "linkerd"},
            }
        ],
        "ports": ports,
    }
