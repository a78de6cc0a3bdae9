"""meshexp-registrar: external workloads register themselves, by their identity.

Runs in the cluster behind its own Linkerd proxy. A workload's bootstrap calls it
through the workload's proxy, so over mTLS; the service's inbound proxy then names
the caller in `l5d-client-id` (the SPIFFE ID of the caller's SVID) and drops any such
header a caller sent (seen with the real proxy: tests/integration/
test_registration_service.py). That header is the only identity believed: the request's
body names no workload. A caller's identity decides the one ExternalWorkload it may
create, update or remove; its addresses must lie inside its group's networks.

A group (RegistrationGroup, meshexp.io/v1alpha1, one per namespace and workload) is
the template: the workload's labels, ports, Service and probe, which identities may
register into it and from which networks, and how many heartbeats may be missed.
Missed heartbeats make the workload Ready False; after the grace period it is
removed. The service keeps no state outside the API server: started again, it reads
what it made, waits a full grace period for each before removing it, and writes
nothing that is already right. An unchanged heartbeat writes nothing.

Standard library only: this file is copied alone into the service's image (its
dependency is python3). One module of over 400 lines: the group's rules, the
trust decisions, the API calls and the HTTP layer are one program, kept together so
that the image holds exactly what `meshexp-build registrar install` shipped.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_GROUP = "meshexp.io"
API_VERSION = "v1alpha1"
GROUP_PLURAL = "registrationgroups"
EW_API = "/apis/workload.linkerd.io/v1beta1"
MANAGER = "meshexp-registrar"
MANAGED = {"app.kubernetes.io/managed-by": MANAGER}
GROUP_LABEL = "meshexp.io/group"
OPAQUE_PORTS = "config.linkerd.io/opaque-ports"
IDENTITY_HEADER = "l5d-client-id"
GROUP_TTL = 10.0  # seconds a group read is used for (a changed group takes effect after)
MAX_BODY = 4096  # a registration is a few addresses and a line: more is refused

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
TRUST_DOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
NAME_PATTERN = re.compile(r"[a-z0-9-]{1,63}\*?")
PROBE_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,254}")
MESSAGE = re.compile(r"[ -~]{0,200}")  # printable ASCII, one line


class Refused(Exception):
    """A request the service will not carry out: its HTTP status and one line."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class GroupError(Exception):
    """A RegistrationGroup the service cannot use (the line names the field)."""


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str
    opaque: bool


@dataclass(frozen=True)
class Group:
    """A RegistrationGroup's spec, checked."""

    namespace: str
    name: str
    workload: str
    trust_domain: str
    identity_style: str
    names: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    labels: dict[str, str]
    ports: tuple[Port, ...]
    probe: dict[str, Any]
    period: int
    failure_threshold: int
    grace: int
    service: bool
    service_port: int | None

    @property
    def stale_after(self) -> float:
        """Seconds without a heartbeat after which the workload is not ready."""
        return float(self.period * self.failure_threshold)


def _text(
    spec: dict[str, Any],
    key: str,
    pattern: re.Pattern[str],
    default: str | None = None,
    where: str = "spec",
) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise GroupError(f"{where}.{key}: {value!r} does not match {pattern.pattern}")
    return value


def _number(
    spec: dict[str, Any],
    key: str,
    low: int,
    high: int,
    default: int | None = None,
    where: str = "spec",
) -> int:
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise GroupError(f"{where}.{key}: {value!r} is not a whole number from {low} to {high}")
    return value


def _ports(items: object) -> tuple[Port, ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= 16:
        raise GroupError("spec.ports: give 1 to 16 ports")
    ports = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise GroupError("spec.ports: each port is a mapping")
        protocol = item.get("protocol", "TCP")
        if protocol not in ("TCP", "UDP"):
            raise GroupError(f"spec.ports: protocol {protocol!r} is not TCP or UDP")
        ports.append(
            Port(
                _text(item, "name", DNS_LABEL, where=f"spec.ports[{index}]"),
                _number(item, "port", 1, 65535, where=f"spec.ports[{index}]"),
                protocol,
                item.get("opaque", False) is True,
            )
        )
    return tuple(ports)


def _networks(items: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= 32:
        raise GroupError("spec.networks: give 1 to 32 networks (CIDR), e.g. 172.18.0.0/16")
    try:
        return tuple(ipaddress.ip_network(str(item), strict=True) for item in items)
    except ValueError as exc:
        raise GroupError(f"spec.networks: {exc}") from None


def group_from_object(obj: dict[str, Any]) -> Group:
    """The group an API object holds, each field held to its rule (the CRD's schema
    checks the same; a group written around it is still refused here)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    heartbeat = spec.get("heartbeat") or {}
    service = spec.get("service") or {}
    probe = spec.get("probe") or {}
    labels = spec.get("labels") or {}
    if (
        not isinstance(labels, dict)
        or len(labels) > 32
        or not all(
            isinstance(k, str)
            and isinstance(v, str)
            and LABEL_KEY.fullmatch(k)
            and LABEL_VALUE.fullmatch(v)
            for k, v in labels.items()
        )
    ):
        raise GroupError("spec.labels: Kubernetes label keys and values, at most 32")
    if "app" in labels or any(key.startswith("app.kubernetes.io/") for key in labels):
        raise GroupError("spec.labels: 'app' and app.kubernetes.io/ labels are set by the service")
    names = spec.get("names") or []
    if not isinstance(names, list) or not all(
        isinstance(n, str) and NAME_PATTERN.fullmatch(n) for n in names
    ):
        raise GroupError("spec.names: names or name prefixes ending in '*', e.g. smiley-*")
    style = spec.get("identityStyle", "namespaced")
    if style not in ("namespaced", "walkthrough"):
        raise GroupError(f"spec.identityStyle: {style!r} is not namespaced or walkthrough")
    ports = _ports(spec.get("ports"))
    checked_probe: dict[str, Any] = {}
    if probe:
        port = _number(probe, "port", 1, 65535, where="spec.probe")
        path = _text(probe, "path", PROBE_PATH, "/", where="spec.probe")
        checked_probe = {"path": path, "port": port}
    return Group(
        namespace=_text(meta, "namespace", DNS_LABEL, where="metadata"),
        name=_text(meta, "name", DNS_LABEL, where="metadata"),
        workload=_text(spec, "workload", DNS_LABEL),
        trust_domain=_text(spec, "trustDomain", TRUST_DOMAIN, "root.linkerd.cluster.local"),
        identity_style=style,
        names=tuple(names),
        networks=_networks(spec.get("networks")),
        labels=dict(labels),
        ports=ports,
        probe=checked_probe,
        period=_number(heartbeat, "periodSeconds", 1, 3600, 10, "spec.heartbeat"),
        failure_threshold=_number(heartbeat, "failureThreshold", 1, 100, 3, "spec.heartbeat"),
        grace=_number(heartbeat, "graceSeconds", 1, 86400, 120, "spec.heartbeat"),
        service=service.get("enabled", True) is not False,
        service_port=_number(service, "port", 1, 65535, ports[0].port, "spec.service")
        if service
        else None,
    )


def name_of(identity: str, group: Group) -> str:
    """The ExternalWorkload's name the caller's identity gives, in this group: the
    identity must be of the group's trust domain (and namespace) and its name one the
    group admits."""
    prefix = f"spiffe://{group.trust_domain}/"
    if group.identity_style == "namespaced":
        prefix += f"ns/{group.namespace}/externalworkload/"
    name = identity.removeprefix(prefix) if identity.startswith(prefix) else ""
    if not DNS_LABEL.fullmatch(name):
        raise Refused(
            403, f"identity {identity[:200]!r} may not register into {group.namespace}/{group.name}"
        )
    if group.names and not any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in group.names
    ):
        raise Refused(403, f"{name} is not a name group {group.namespace}/{group.name} admits")
    return name


def addresses_of(body: dict[str, Any], group: Group) -> list[str]:
    """The addresses a registration declares: one or two (one per family), each inside
    one of the group's networks."""
    declared = body.get("addresses")
    if not isinstance(declared, list) or not 1 <= len(declared) <= 2:
        raise Refused(400, "addresses: give one address, or one IPv4 and one IPv6")
    found = []
    for text in declared:
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            raise Refused(400, f"addresses: {str(text)[:60]!r} is not an IP address") from None
        if not any(address in network for network in group.networks):
            raise Refused(403, f"addresses: {address} is outside the group's networks")
        found.append(address)
    if len({a.version for a in found}) != len(found):
        raise Refused(400, "addresses: give at most one IPv4 and one IPv6 address")
    return [str(a) for a in found]


def external_workload(
    group: Group, name: str, identity: str, addresses: list[str]
) -> dict[str, Any]:
    """The ExternalWorkload a registration makes: the group's template, the caller's
    identity (so the mesh verifies that identity, no other, at these addresses)."""
    if group.identity_style == "namespaced":
        server_name = f"{name}.{group.namespace}.externalworkload.cluster.local"
    else:
        server_name = f"{name}.cluster.local"
    opaque = [str(p.port) for p in group.ports if p.opaque]
    return {
        "apiVersion": "workload.linkerd.io/v1beta1",
        "kind": "ExternalWorkload",
        "metadata": {
            "name": name,
            "namespace": group.namespace,
            "labels": {**group.labels, "app": group.workload, GROUP_LABEL: group.name, **MANAGED},
            "annotations": {OPAQUE_PORTS: ",".join(opaque)} if opaque else {},
        },
        "spec": {
            "meshTLS": {"identity": identity, "serverName": server_name},
            "workloadIPs": [{"ip": a} for a in addresses],
            "ports": [
                {"name": p.name, "port": p.port, "protocol": p.protocol} for p in group.ports
            ],
        },
    }


def service_of(group: Group) -> dict[str, Any]:
    """The group's Service: every registered instance of the workload behind one name."""
    opaque = [
        str(group.service_port if i == 0 and group.service_port else p.port)
        for i, p in enumerate(group.ports)
        if p.opaque
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": group.workload,
            "namespace": group.namespace,
            "labels": {**group.labels, GROUP_LABEL: group.name, **MANAGED},
            "annotations": {OPAQUE_PORTS: ",".join(opaque)} if opaque else {},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": group.workload},
            "ports": [
                {
                    "name": p.name,
                    "port": group.service_port if i == 0 and group.service_port else p.port,
                    "targetPort": p.name,
                    "protocol": p.protocol,
                }
                for i, p in enumerate(group.ports)
            ],
        },
    }


def ready_status(ready: bool, reason: str, message: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    return {"status": {"conditions": [condition]}}


class Kube:
    """The API server over HTTPS: a bearer token (in the cluster, the service account's)
    or a client certificate (the lab's), and the server's CA."""

    def __init__(
        self,
        server: str,
        ca: str,
        token_file: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(server)
        self.host, self.port = parsed.hostname or "", parsed.port or 443
        self.context = ssl.create_default_context(cafile=ca)
        if cert:
            self.context.load_cert_chain(cert, key)
        self.token_file = token_file
        self.writes = 0
        self.lock = threading.Lock()

    def call(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if self.token_file:
            token = (
                Path(self.token_file).read_text(encoding="ascii").strip()
            )  # the kubelet renews it
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), content_type
        if method != "GET":
            with self.lock:
                self.writes += 1
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=15
        )
        try:
            connection.request(method, path, data, headers)
            answer = connection.getresponse()
            text = answer.read()
        finally:
            connection.close()
        return answer.status, json.loads(text) if text else {}

    def apply(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.call(
            "PATCH",
            f"{path}?fieldManager={MANAGER}&force=true",
            document,
            "application/apply-patch+yaml",
        )
        if status >= 300:
            raise Refused(502, f"the API server refused {path}: {answer.get('message', status)}")
        return answer


def ew_path(namespace: str, name: str = "") -> str:
    return f"{EW_API}/namespaces/{namespace}/externalworkloads" + (f"/{name}" if name else "")


@dataclass
class Held:
    """What the service knows of one registration (kept in memory only; rebuilt from
    the API server on start)."""

    group: Group
    seen: float
    document: dict[str, Any] | None = None  # what the server holds, as we wrote it
    ready: bool | None = None  # the Ready status last written
    message: str = ""


@dataclass
class Registrations:
    kube: Kube
    clock: Callable[[], float] = time.monotonic
    held: dict[tuple[str, str], Held] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    services: set[tuple[str, str]] = field(default_factory=set)
    groups: dict[tuple[str, str], tuple[float, Group]] = field(default_factory=dict)

    def group(self, namespace: str, name: str) -> Group:
        """The group, read again once GROUP_TTL seconds old: a fleet's heartbeats cost the
        API server one read per group and period, not one per heartbeat."""
        cached = self.groups.get((namespace, name))
        if cached is not None and self.clock() - cached[0] < GROUP_TTL:
            return cached[1]
        found = self._read_group(namespace, name)
        self.groups[(namespace, name)] = (self.clock(), found)
        return found

    def _read_group(self, namespace: str, name: str) -> Group:
        status, obj = self.kube.call(
            "GET", f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{GROUP_PLURAL}/{name}"
        )
        if status == 404:
            raise Refused(404, f"no group {namespace}/{name}")
        if status >= 300:
            raise Refused(502, f"the API server answered {status} for group {namespace}/{name}")
        try:
            return group_from_object(obj)
        except GroupError as exc:
            raise Refused(409, f"group {namespace}/{name}: {exc}") from None

    def register(
        self, namespace: str, group_name: str, identity: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A registration or a heartbeat: write what differs from what the server holds."""
        group = self.group(namespace, group_name)
        name = name_of(identity, group)
        wanted = external_workload(group, name, identity, addresses_of(body, group))
        ready = body.get("ready", True) is True
        message = body.get("message", "")
        if not isinstance(message, str) or not MESSAGE.fullmatch(message):
            raise Refused(400, "message: one line of printable text, at most 200 characters")
        with self.lock:
            held = self.held.get((namespace, name))
            if held is None:
                held = Held(group, self.clock())
                held.document, held.ready = self._read(namespace, name, identity)
                self.held[(namespace, name)] = held
            held.group, held.seen = group, self.clock()
            if held.document != wanted:
                self.kube.apply(ew_path(namespace, name), wanted)
                held.document = wanted
            if held.ready is not ready or (not ready and held.message != message):
                reason = "HeartbeatReady" if ready else "ProbeFailed"
                self._status(namespace, name, ready, reason, message or f"reported by {name}")
                held.ready, held.message = ready, message
            self._service(group)
        return {
            "name": name,
            "namespace": namespace,
            "heartbeatSeconds": group.period,
            "probe": group.probe,
        }

    def _read(
        self, namespace: str, name: str, identity: str
    ) -> tuple[dict[str, Any] | None, bool | None]:
        """What the server holds under `name`: refused where it is not ours, or ours for
        another identity."""
        status, obj = self.kube.call("GET", ew_path(namespace, name))
        if status == 404:
            return None, None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != MANAGER:
            raise Refused(
                409, f"ExternalWorkload {namespace}/{name} exists and is not the service's"
            )
        if ((obj.get("spec") or {}).get("meshTLS") or {}).get("identity") != identity:
            raise Refused(403, f"ExternalWorkload {namespace}/{name} belongs to another identity")
        conditions = (obj.get("status") or {}).get("conditions") or []
        ready = next(
            (c.get("status") == "True" for c in conditions if c.get("type") == "Ready"), None
        )
        return comparable(obj), ready

    def _status(self, namespace: str, name: str, ready: bool, reason: str, message: str) -> None:
        status, answer = self.kube.call(
            "PATCH",
            ew_path(namespace, name) + "/status",
            ready_status(ready, reason, message),
            "application/merge-patch+json",
        )
        if status >= 300:
            raise Refused(
                502, f"the API server refused the status of {name}: {answer.get('message', status)}"
            )

    def _service(self, group: Group) -> None:
        """The group's Service, applied once per process; one of that name that the
        service did not make (a chart's, say) is left as it is."""
        key = (group.namespace, group.workload)
        if not group.service or key in self.services:
            return
        path = f"/api/v1/namespaces/{group.namespace}/services/{group.workload}"
        status, found = self.kube.call("GET", path)
        labels = (found.get("metadata") or {}).get("labels") or {}
        if status == 404 or labels.get("app.kubernetes.io/managed-by") == MANAGER:
            self.kube.apply(path, service_of(group))
        self.services.add(key)

    def deregister(self, namespace: str, group_name: str, identity: str) -> dict[str, Any]:
        group = self.group(namespace, group_name)
        name = name_of(identity, group)
        with self.lock:
            self._read(namespace, name, identity)  # refuses what is not the caller's
            self._delete(namespace, name)
        return {"name": name, "namespace": namespace, "removed": True}

    def _delete(self, namespace: str, name: str) -> None:
        self.kube.call("DELETE", ew_path(namespace, name))
        self.held.pop((namespace, name), None)

    def recover(self) -> int:
        """On start: every ExternalWorkload the service made, held as just seen (a
        full grace period before any is removed); nothing written."""
        selector = urllib.parse.quote(f"app.kubernetes.io/managed-by={MANAGER}")
        status, listing = self.kube.call(
            "GET", f"{EW_API}/externalworkloads?labelSelector={selector}"
        )
        if status >= 300:
            raise Refused(502, f"the API server answered {status} listing ExternalWorkloads")
        for obj in listing.get("items") or []:
            meta = obj["metadata"]
            try:
                group = self.group(meta["namespace"], meta["labels"][GROUP_LABEL])
            except (Refused, KeyError):
                continue  # its group is gone: left to whoever removed it
            conditions = (obj.get("status") or {}).get("conditions") or []
            ready = next(
                (c.get("status") == "True" for c in conditions if c.get("type") == "Ready"), None
            )
            self.held[(meta["namespace"], meta["name"])] = Held(
                group, self.clock(), comparable(obj), ready
            )
        return len(self.held)

    def sweep(self) -> list[str]:
        """Not ready after the group's missed heartbeats; removed after its grace."""
        said = []
        with self.lock:
            now = self.clock()
            for (namespace, name), held in list(self.held.items()):
                silent = now - held.seen
                if silent > held.group.grace:
                    self._delete(namespace, name)
                    said.append(f"{namespace}/{name}: removed (no heartbeat for {silent:.0f} s)")
                elif silent > held.group.stale_after and held.ready is not False:
                    message = f"no heartbeat for {silent:.0f} s"
                    self._status(namespace, name, False, "HeartbeatMissed", message)
                    held.ready, held.message = False, message
                    said.append(f"{namespace}/{name}: not ready ({message})")
        return said


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields the service writes, as the server holds them."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {},
            "annotations": {
                k: v for k, v in (meta.get("annotations") or {}).items() if k == OPAQUE_PORTS
            },
        },
        "spec": obj.get("spec"),
    }


ROUTE = re.compile(r"/v1/namespaces/([a-z0-9-]{1,63})/groups/([a-z0-9-]{1,63})/registration")


class Handler(http.server.BaseHTTPRequestHandler):
    """PUT registers or heartbeats, DELETE deregisters; the caller is whom its proxy
    says, in the one header the service's own inbound proxy sets."""

    registrations: Registrations
    server_version = MANAGER

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, {"ok": True})
        elif self.path == "/metrics":
            text = (
                f"meshexp_registrar_registrations {len(self.registrations.held)}\n"
                f"meshexp_registrar_api_writes_total {self.registrations.kube.writes}\n"
            )
            self._answer(200, text)
        else:
            self._answer(404, {"error": "not found"})

    def do_PUT(self) -> None:
        self._route(
            lambda ns, group, who: self.registrations.register(ns, group, who, self._body())
        )

    def do_DELETE(self) -> None:
        self._route(self.registrations.deregister)

    def _route(self, action: Callable[[str, str, str], dict[str, Any]]) -> None:
        try:
            match = ROUTE.fullmatch(self.path)
            if not match:
                raise Refused(
                    404, "not found: PUT or DELETE /v1/namespaces/NS/groups/GROUP/registration"
                )
            identities = self.headers.get_all(IDENTITY_HEADER) or []
            if len(identities) != 1 or not identities[0].startswith("spiffe://"):
                raise Refused(401, "no identity: call through a meshed proxy over mTLS")
            self._answer(200, action(match[1], match[2], identities[0]))
        except Refused as exc:
            self._answer(exc.status, {"error": exc.reason})
        except (OSError, ValueError) as exc:  # the API server unreachable, or not JSON
            self._answer(503, {"error": f"the API server cannot be reached: {exc}"[:300]})

    def _body(self) -> dict[str, Any]:
        text = self.headers.get("Content-Length") or "0"
        length = int(text) if text.isdigit() and len(text) < 10 else -1
        if not 0 < length <= MAX_BODY:
            raise Refused(413 if length > MAX_BODY else 400, f"a body of 1 to {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body is a JSON object")
        return body

    def _answer(self, status: int, body: object) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, str) else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def arguments(argv: Iterable[str]) -> argparse.Namespace:
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST", ""),
        os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
    )
    parser = argparse.ArgumentParser(prog=MANAGER, description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0:8080")
    parser.add_argument("--server", default=f"https://{host}:{port}" if host else None)
    parser.add_argument("--ca", default=f"{account}/ca.crt")
    parser.add_argument("--token-file", default=f"{account}/token")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    parser.add_argument("--sweep-seconds", type=float, default=1.0)
    return parser.parse_args(list(argv))


def main(argv: Iterable[str] = sys.argv[1:]) -> int:
    args = arguments(argv)
    if not args.server:
        print(f"{MANAGER}: no API server: give --server, or run in the cluster", file=sys.stderr)
        return 2
    kube = Kube(
        args.server,
        args.ca,
        None if args.client_cert else args.token_file,
        args.client_cert,
        args.client_key,
    )
    registrations = Registrations(kube)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores it otherwise
    print(f"{MANAGER}: holding {registrations.recover()} registration(s)", flush=True)
    handler = type("Bound", (Handler,), {"registrations": registrations})
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{MANAGER}: listening on {args.listen}", flush=True)
    while True:
        time.sleep(args.sweep_seconds)
        try:
            for line in registrations.sweep():
                print(f"{MANAGER}: {line}", flush=True)
        except (Refused, OSError, ValueError) as exc:  # tried again on the next sweep
            print(f"{MANAGER}: {getattr(exc, 'reason', exc)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
