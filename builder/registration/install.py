"""`meshexp-build registrar install`: the registration service's image and the objects
that run it in a cluster (its CRD, account, RBAC, Deployment and Service).

RBAC is the least the service needs: it reads groups and ExternalWorkloads everywhere
(to find what it made when it starts), and writes ExternalWorkloads, their status and
Services only in the namespaces its groups are for (a Role in each).
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from builder.build.base_image import build_base
from builder.cluster import kube
from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.config.validation import IMAGE_REF, check_dns_label, shown
from builder.core.errors import MeshexpError
from builder.engine import docker_engine
from builder.registration import service

NAME = service.MANAGER  # meshexp-registrar: the account, Deployment and Service
PORT = 8080
UID = 65532  # the service runs as nobody of its own
FOLDER = "/usr/local/lib/meshexp-registrar"
DEFAULT_IMAGE = "meshexp/registrar:latest"

DOCKERFILE = f"""\
# meshexp-registrar: one file of Python's standard library, on Debian's python3.
ARG BASE=debian:bookworm-slim
FROM ${{BASE}}
# hadolint ignore=DL3008
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*
COPY service.py {FOLDER}/service.py
USER {UID}:{UID}
EXPOSE {PORT}
ENTRYPOINT ["python3", "{FOLDER}/service.py", "--listen", "0.0.0.0:{PORT}"]
"""


def crd_document() -> dict[str, Any]:
    text = resources.files("builder.registration").joinpath("registrationgroups.crd.yaml")
    return dict(yaml.safe_load(text.read_text()))


def write_context(folder: Path) -> Path:
    """The service's build context: its Dockerfile and its one file."""
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "service.py").write_text(Path(service.__file__).read_text())
    return folder


def build_service_image(
    reference: str, base: str, platform: str = "linux/amd64", offline: bool = False
) -> str:
    """The service's image, FROM `base` (Debian bookworm), as `reference`; `offline`, on
    the Debian base built here (made first where the engine lacks it)."""
    if offline:
        base = build_base(reference=OFFLINE_BASE_IMAGE).reference
    for value, where in ((reference, "--tag"), (base, "--base")):
        if not IMAGE_REF.fullmatch(value):
            raise MeshexpError(f"{where}: {shown(value)} is not an image reference (name[:tag])")
    with tempfile.TemporaryDirectory(prefix="meshexp-registrar-") as scratch:
        docker_engine.build_image(
            context=write_context(Path(scratch)),
            tag=reference,
            platform=platform,
            buildargs={"BASE": base},
        )
    return reference


def group_document(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A RegistrationGroup object with `spec` (the service checks it: service.Group)."""
    return {
        "apiVersion": f"{service.API_GROUP}/{service.API_VERSION}",
        "kind": "RegistrationGroup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": NAME}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def rbac_documents(namespace: str, group_namespaces: list[str]) -> list[dict[str, Any]]:
    """The service's account, its cluster-wide reads and its writes in each namespace
    of its groups."""
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]
    reads = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"{NAME}-read"),
        "rules": [
            {
                "apiGroups": [service.API_GROUP],
                "resources": [service.GROUP_PLURAL],
                "verbs": ["get", "list"],
            },
            {
                "apiGroups": ["workload.linkerd.io"],
                "resources": ["externalworkloads"],
                "verbs": ["get", "list"],
            },
        ],
    }
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)},
        reads,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(f"{NAME}-read"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{NAME}-read",
            },
            "subjects": subject,
        },
    ]
    writes = [
        {
            "apiGroups": ["workload.linkerd.io"],
            "resources": ["externalworkloads", "externalworkloads/status"],
            "verbs": ["get", "create", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch"]},
    ]
    for target in sorted(set(group_namespaces)):
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(NAME, target),
                "rules": writes,
            }
        )
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(NAME, target),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                "subjects": subject,
            }
        )
    return documents


def workload_documents(namespace: str, image: str) -> list[dict[str, Any]]:
    """The Deployment (meshed by Linkerd's injector) and its Service."""
    labels = {"app.kubernetes.io/name": NAME}
    pod = {
        "metadata": {"labels": labels, "annotations": {"linkerd.io/inject": "enabled"}},
        "spec": {
            "serviceAccountName": NAME,
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID},
            "containers": [
                {
                    "name": "registrar",
                    "image": image,
                    # a tag already on the nodes is used as it is (loaded, or pulled once)
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                }
            ],
        },
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(NAME, namespace),
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(NAME, namespace),
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        },
    ]


def install_documents(
    *, namespace: str, group_namespaces: list[str], image: str
) -> list[dict[str, Any]]:
    """Everything `registrar install` applies, in order."""
    namespace_doc = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {**_meta(namespace), "annotations": {"linkerd.io/inject": "enabled"}},
    }
    return [
        crd_document(),
        namespace_doc,
        *rbac_documents(namespace, group_namespaces),
        *workload_documents(namespace, image),
    ]


def check_install(*, namespace: str, group_namespaces: list[str], image: str) -> None:
    """The install's names, each held to its rule before anything is rendered."""
    check_dns_label(namespace, "--namespace")
    if not group_namespaces:
        raise MeshexpError(
            "give the namespaces the service's groups register into: --group-namespace NS "
            "(repeat); it may write only there"
        )
    for target in group_namespaces:
        check_dns_label(target, "--group-namespace")
    if not IMAGE_REF.fullmatch(image):
        raise MeshexpError(f"--image: {shown(image)} is not an image reference (name[:tag])")


def install(
    *, kubeconfig: Path, namespace: str, group_namespaces: list[str], image: str
) -> list[str]:
    """Apply everything the service needs (its CRD first, until the server has it);
    what was applied, a line each."""
    check_install(namespace=namespace, group_namespaces=group_namespaces, image=image)
    documents = install_documents(
        namespace=namespace, group_namespaces=group_namespaces, image=image
    )
    client = kube.connect(kubeconfig)
    crd, rest = documents[0], documents[1:]
    kube.apply_crds(client, yaml.safe_dump(crd))
    for target in group_namespaces:
        kube.ensure_namespace(client, target)
    applied = [f"CustomResourceDefinition {crd['metadata']['name']}"]
    for ref in kube.apply_documents(client, rest):
        where = f"{ref.namespace}/" if ref.namespace not in ("", "None") else ""
        applied.append(f"{ref.kind} {where}{ref.name}")
    return applied
