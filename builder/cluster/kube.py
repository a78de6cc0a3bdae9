"""The one module that talks to a Kubernetes API server (lightkube).

lightkube rather than the official `kubernetes` client: it is small (httpx
and typed models), speaks server-side apply and status subresources directly,
and handles custom resources (Linkerd's ExternalWorkload) without generated
code. Every API error comes back as one line naming the object and the field,
in the server's own words, with the fix where we know it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx2 as httpx
import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service, ServiceAccount
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from builder.config.yamlfile import read_yaml_file
from builder.core.errors import MeshexpError
from builder.core.wait import NotYet, TimedOut, until

FIELD_MANAGER = "meshexp-build"
KubeClient = Client  # for callers that hold one without importing lightkube
MANAGED_BY = ("app.kubernetes.io/managed-by", "meshexp-build")
ExternalWorkload = create_namespaced_resource(
    "workload.linkerd.io", "v1beta1", "ExternalWorkload", "externalworkloads"
)


class KubeError(MeshexpError):
    """The API server refused something, or cannot be reached."""


class KubeUnreachable(KubeError):
    """The API server did not answer at all (down, restarting, wrong address)."""


def raise_for(exc: ApiError | httpx.HTTPError, what: object) -> NoReturn:
    """Raise the one-line error for `exc`: unreachable, or refused."""
    if isinstance(exc, ApiError):
        raise KubeError(error_line(exc, what)) from None
    raise KubeUnreachable(error_line(exc, what)) from None


@dataclass(frozen=True)
class ObjectRef:
    """One namespaced object: kind, name, namespace."""

    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def connect(kubeconfig: Path) -> Client:
    """A client for the cluster `kubeconfig` names (its current context)."""
    document = read_yaml_file(kubeconfig, "kubeconfig", KubeError)
    if not isinstance(document, dict) or not document.get("clusters"):
        raise KubeError(
            f"{kubeconfig}: not a kubeconfig (no clusters in it); give the file "
            "`kind get kubeconfig`, `k3d kubeconfig get` or `lab up` wrote"
        )
    try:
        config = KubeConfig.from_dict(document, fname=kubeconfig.expanduser())
    except (ConfigError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise KubeError(f"{kubeconfig}: not a usable kubeconfig ({exc})") from None
    return Client(config, field_manager=FIELD_MANAGER, timeout=httpx.Timeout(15.0))


def error_line(exc: ApiError | httpx.HTTPError, what: object) -> str:
    """One line: which object, which field, what the server said, and the fix we know."""
    if not isinstance(exc, ApiError):
        return f"{what}: the API server did not answer ({exc}); check the kubeconfig's server"
    status = exc.status
    message = (status.message or "").strip()
    causes = status.details.causes if status.details and status.details.causes else []
    if causes:
        message = "; ".join(
            f"{cause.field}: {cause.message}" if cause.field else str(cause.message)
            for cause in causes
        )
    if status.code == 404 and "namespaces" in message and "not found" in message:
        namespace = getattr(what, "namespace", "")
        return (
            f"{what}: namespace {namespace!r} does not exist in the cluster; create it "
            f"(kubectl create namespace {namespace}) or give another --namespace"
        )
    return f"{what}: {message}"


def _ref(doc: dict[str, Any]) -> ObjectRef:
    meta = doc.get("metadata") or {}
    return ObjectRef(str(doc.get("kind")), str(meta.get("name")), str(meta.get("namespace")))


def apply_documents(client: Client, documents: Iterable[dict[str, Any]]) -> list[ObjectRef]:
    """Server-side apply each document (validated by the server); what was applied."""
    applied = []
    for doc in documents:
        ref = _ref(doc)
        metadata = doc.setdefault("metadata", {})
        metadata.setdefault("labels", {})[MANAGED_BY[0]] = MANAGED_BY[1]
        try:
            client.apply(codecs.from_dict(doc), force=True)
        except (ApiError, httpx.HTTPError) as exc:
            raise_for(exc, ref)
        applied.append(ref)
    return applied


def set_status(client: Client, name: str, namespace: str, status: dict[str, Any]) -> None:
    """Merge `status` into the ExternalWorkload's status subresource (Linkerd 2.16+)."""
    ref = ObjectRef("ExternalWorkload", name, namespace)
    try:
        client.patch(
            ExternalWorkload.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, ref)


def ready_condition(name: str, namespace: str, client: Client) -> dict[str, Any] | None:
    """The ExternalWorkload's Ready condition as the server holds it, or None."""
    try:
        found = client.get(ExternalWorkload, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise_for(exc, ObjectRef("ExternalWorkload", name, namespace))
    except httpx.HTTPError as exc:
        raise_for(exc, ObjectRef("ExternalWorkload", name, namespace))
    for condition in (found.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


MeshTLSAuthentication = create_namespaced_resource(
    "policy.linkerd.io", "v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications"
)
# Linkerd's policy kinds, so that documents of them can be applied and deleted.
Server = create_namespaced_resource("policy.linkerd.io", "v1beta3", "Server", "servers")
AuthorizationPolicy = create_namespaced_resource(
    "policy.linkerd.io", "v1alpha1", "AuthorizationPolicy", "authorizationpolicies"
)
HTTPRoute = create_namespaced_resource("policy.linkerd.io", "v1beta3", "HTTPRoute", "httproutes")
KINDS: dict[str, Any] = {
    "HTTPRoute": HTTPRoute,
    "ExternalWorkload": ExternalWorkload,
    "Service": Service,
    "MeshTLSAuthentication": MeshTLSAuthentication,
    "Server": Server,
    "AuthorizationPolicy": AuthorizationPolicy,
    "ServiceAccount": ServiceAccount,
    "EndpointSlice": EndpointSlice,
    "Deployment": Deployment,
    "Pod": Pod,
}


def as_dict(found: Any) -> dict[str, Any]:
    """An object lightkube returned (a model or a generic resource) as plain data."""
    if isinstance(found, dict):
        return dict(found)
    return dict(found.to_dict())


def get_object(client: Client, ref: ObjectRef) -> dict[str, Any] | None:
    """The object as the server holds it, or None when there is none."""
    try:
        return as_dict(client.get(KINDS[ref.kind], ref.name, namespace=ref.namespace))
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise_for(exc, ref)
    except httpx.HTTPError as exc:
        raise_for(exc, ref)


def list_objects(
    client: Client, kind: str, labels: dict[str, str], namespace: str = "*"
) -> list[dict[str, Any]]:
    """Every object of `kind` carrying `labels`, in `namespace` (all by default)."""
    try:
        return [
            as_dict(found)
            for found in client.list(KINDS[kind], namespace=namespace, labels=dict(labels.items()))
        ]
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, f"{kind} list")


def nodes(client: Client) -> list[dict[str, Any]]:
    """Every node of the cluster, as the server holds it."""
    try:
        return [as_dict(found) for found in client.list(Node)]
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, "Node list")


def delete_managed(client: Client, refs: Iterable[ObjectRef]) -> list[ObjectRef]:
    """Delete these objects where they carry our managed-by label; what was deleted."""
    deleted = []
    for ref in refs:
        kind = KINDS[ref.kind]
        try:
            found = client.get(kind, ref.name, namespace=ref.namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                continue
            raise KubeError(error_line(exc, ref)) from None
        labels = (
            found.get("metadata", {}).get("labels")
            if isinstance(found, dict)
            else found.metadata.labels
        ) or {}
        if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
            continue  # not ours: never touched
        try:
            client.delete(kind, ref.name, namespace=ref.namespace)
        except ApiError as exc:
            raise KubeError(error_line(exc, ref)) from None
        deleted.append(ref)
    return deleted


def ensure_namespace(client: Client, name: str) -> None:
    try:
        client.apply(Namespace(metadata=ObjectMeta(name=name)), force=True)
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, f"Namespace {name}")


def crd_documents(text: str) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            yield doc


def apply_crds(client: Client, text: str, timeout: float = 60) -> list[str]:
    """Apply the CustomResourceDefinitions in `text` and wait until each is Established."""
    names = []
    for doc in crd_documents(text):
        name = str(doc["metadata"]["name"])
        try:
            client.apply(codecs.from_dict(doc), force=True)
        except (ApiError, httpx.HTTPError) as exc:
            raise_for(exc, f"CustomResourceDefinition {name}")
        names.append(name)
    pending = list(names)

    def established() -> bool | NotYet:
        while pending and _established(client.get(CustomResourceDefinition, pending[0])):
            pending.pop(0)
        return True if not pending else NotYet(f"CustomResourceDefinition {pending[0]}")

    try:
        until(established, timeout=timeout)
    except TimedOut as exc:
        raise KubeError(f"{exc.reason} not Established in {timeout}s") from None
    return names


def _established(crd: CustomResourceDefinition) -> bool:
    conditions = crd.status.conditions if crd.status and crd.status.conditions else []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def service_account_token(
    client: Client, account: str, namespace: str, audience: str | None = None, seconds: int = 86400
) -> str:
    """A bound token for a service account (TokenRequest), as a projected volume holds it."""
    from lightkube.models.authentication_v1 import TokenRequestSpec
    from lightkube.resources.core_v1 import ServiceAccount

    spec = TokenRequestSpec(audiences=[audience] if audience else [], expirationSeconds=seconds)
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=account, namespace=namespace), spec=spec
    )
    try:
        answer = client.create(request, account, namespace=namespace)
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, f"ServiceAccount {namespace}/{account} token")
    if answer.status is None or not answer.status.token:
        raise KubeError(f"ServiceAccount {namespace}/{account}: the server issued no token")
    return str(answer.status.token)


def running_pod(client: Client, pod: dict[str, Any], ip: str) -> None:
    """Create (or replace) a Pod object no kubelet runs, and mark it Running at `ip`:
    the controllers look their own pods up, and EndpointSlices name them.
    """
    from lightkube.resources.core_v1 import Pod

    meta = pod["metadata"]
    ref = ObjectRef("Pod", meta["name"], meta["namespace"])
    try:
        with contextlib.suppress(ApiError):
            client.delete(Pod, meta["name"], namespace=meta["namespace"], grace_period=0)
        client.create(codecs.from_dict(pod))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": ip,
            "startTime": now,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
            ],
        }
        client.patch(
            Pod.Status,
            meta["name"],
            {"status": status},
            namespace=meta["namespace"],
            patch_type=PatchType.MERGE,
        )
    except (ApiError, httpx.HTTPError) as exc:
        raise_for(exc, ref)
