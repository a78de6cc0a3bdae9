"""A real Linkerd control plane on a Docker network, with no Kubernetes nodes.

`meshexp-build lab up` starts, each as a container on one network with a
fixed address:
- etcd and kube-apiserver (the project's own build, builder.cluster.apiserver);
- Linkerd's objects from `linkerd install` (the user's linkerd CLI), with the
  trust anchor and issuer of `meshexp-build certs`, less what needs a kubelet
  or a webhook (the webhook configurations and the heartbeat CronJob);
- the identity "pod" (the identity controller) and the destination "pod"
  (destination and policy controllers), each behind a real linkerd2-proxy
  started through proxy-identity, with an inbound traffic capture, the Pod
  objects the controllers look up (marked Running, since no kubelet does),
  their projected tokens and files, and EndpointSlices for Linkerd's Services;
- a DNS server (dnsmasq) that answers Linkerd's Service names with the pods'
  addresses, and workload Services' names with their ClusterIPs.

Everything carries the label io.meshexp.lab=<name>; `lab down` removes it all,
also after a failed `up`. What was learnt doing this by hand, step by step, is
in ../shared/test-equipment/linkerd-control-plane/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.cluster import kube
from builder.cluster.apiserver import (
    apiserver_command,
    etcd_command,
    prepare_apiserver,
    secret_file,
    service_account_keys,
    write_kubeconfig,
)
from builder.cluster.certs import create_certs
from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.core.errors import MeshexpError
from builder.core.progress import Progress
from builder.engine import docker_engine

LABEL = "io.meshexp.lab"
RUNTIME_IMAGE = "meshexp/lab-runtime:bookworm"
NODE_NAME = "meshexp-lab"
PROXY_UID, CONTROLLER_UID = 2102, 2103
APISERVER_PORT = 6443
READY_TIMEOUT = 120.0
# Kinds `linkerd install` renders that need a kubelet, a webhook server or a
# CronJob controller: not applied in a lab.
SKIPPED_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "CronJob")
# The control-plane pods the lab runs, from the Deployments of these names.
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


@dataclass(frozen=True)
class Addresses:
    """Fixed addresses on the lab's /24; the engine hands out only the upper half."""

    subnet: str

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
        state = {"name": self.name, "network": self.network, "subnet": self.addresses.subnet}
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
            Addresses(state["subnet"]),
            folder / "kubeconfig",
        )


def pick_subnet(used: list[str]) -> str:
    """A /24 in 10.213.0.0/16 that no engine network overlaps."""
    taken = [ipaddress.ip_network(subnet) for subnet in used]
    for candidate in ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in taken):
            return str(candidate)
    raise LabError("lab: no free /24 left in 10.213.0.0/16 for the lab network")


# ------------------------------------------------------------------ up


def lab_up(
    *,
    folder: Path,
    sources: LabSources,
    crds: tuple[str, ...],
    name: str = "meshexp-lab",
    progress: Progress | None = None,
) -> Lab:
    """Start the lab; on any failure, remove what was started and raise."""
    progress = progress or Progress()
    sources = sources.check()
    lab_down(name=name, folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    addresses = Addresses(pick_subnet(docker_engine.used_subnets()))
    lab = Lab(name, folder.resolve(), name, addresses, folder.resolve() / "kubeconfig")
    try:
        with progress.phase("lab runtime image"):
            ensure_runtime_image()
        docker_engine.create_lab_network(name, addresses.subnet, addresses.dynamic, {LABEL: name})
        lab.save()
        with progress.phase(f"Kubernetes API server on {addresses.apiserver}"):
            client = start_apiserver(lab, crds)
        with progress.phase("Linkerd's objects (linkerd install)"):
            objects = linkerd_objects(sources.linkerd, lab)
            kube.apply_documents(client, [o for o in objects if o["kind"] not in SKIPPED_KINDS])
        write_dns(lab, {})
        start_dns(lab)
        for pod in PODS:
            with progress.phase(f"{pod} controller behind a linkerd2-proxy"):
                start_pod(lab, client, sources, objects, pod)
        endpoint_slices(client, lab, objects)
        with progress.phase("control plane ready (proxies certified)"):
            wait_until_ready(lab)
    except BaseException:
        lab_down(name=name, folder=folder)
        raise
    return lab


def ensure_runtime_image() -> None:
    """The offline base plus iptables and dnsmasq (Debian's), built once."""
    if docker_engine.image_exists(RUNTIME_IMAGE):
        return
    if not docker_engine.image_exists(OFFLINE_BASE_IMAGE):
        from builder.build.base_image import build_base

        build_base(reference=OFFLINE_BASE_IMAGE)
    with tempfile.TemporaryDirectory(prefix="meshexp-lab-runtime-") as scratch:
        (Path(scratch) / "Dockerfile").write_text(
            f"FROM {OFFLINE_BASE_IMAGE}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            "iptables dnsmasq-base && rm -rf /var/lib/apt/lists/*\n"
        )
        docker_engine.build_image(context=Path(scratch), tag=RUNTIME_IMAGE, platform="linux/amd64")


def _container(lab: Lab, role: str, ip: str, command: list[str], **extra: Any) -> str:
    spec = docker_engine.LabContainer(
        name=f"{lab.name}-{role}",
        image=RUNTIME_IMAGE,
        network=lab.network,
        ip=ip,
        command=command,
        labels={LABEL: lab.name, f"{LABEL}.role": role},
        **extra,
    )
    return docker_engine.start_lab_container(spec)


def start_apiserver(lab: Lab, crds: tuple[str, ...]) -> Any:
    """etcd and kube-apiserver in one container; ready, with the CRDs; a client."""
    binary, etcd = prepare_apiserver()
    folder = lab.folder / "apiserver"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    service_account_keys(folder)
    token = secrets.token_hex(24)
    secret_file(folder / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n'.encode())
    etcd_url = "http://127.0.0.1:2379"
    ip = lab.addresses.apiserver
    etcd_line = " ".join(etcd_command(etcd, folder, etcd_url, 2380))
    api_line = " ".join(apiserver_command(binary, folder, etcd_url, "0.0.0.0", APISERVER_PORT, ip))
    script = f"{etcd_line} >{folder}/etcd.log 2>&1 & exec {api_line}"
    binds = {str(p): f"{p}:ro" for p in (binary, etcd)} | {str(folder): f"{folder}:rw"}
    _container(lab, "apiserver", ip, ["bash", "-c", script], binds=binds)
    url = f"https://{ip}:{APISERVER_PORT}"
    _wait_readyz(url, token, lab)
    write_kubeconfig(lab.kubeconfig, url, (folder / "certs" / "apiserver.crt").read_bytes(), token)
    client = kube.connect(lab.kubeconfig)
    for text in crds:
        kube.apply_crds(client, text)
    return client


def _wait_readyz(url: str, token: str, lab: Lab, timeout: float = 90) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(request, timeout=3, context=insecure) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.5)
    logs = docker_engine.container_logs(f"{lab.name}-apiserver")[-1500:]
    raise LabNotUp(f"lab: the API server at {url} was not ready in {timeout:.0f}s:\n{logs}")


def linkerd_objects(linkerd: Path, lab: Lab) -> list[dict[str, Any]]:
    """`linkerd install` with the lab's own trust anchor and issuer."""
    certs = lab.folder / "certs"
    if not (certs / "issuer.key").is_file():
        create_certs(folder=certs)
    done = subprocess.run(
        [
            str(linkerd),
            "install",
            "--ignore-cluster",
            "--identity-trust-anchors-file",
            str(certs / "ca.crt"),
            "--identity-issuer-certificate-file",
            str(certs / "issuer.crt"),
            "--identity-issuer-key-file",
            str(certs / "issuer.key"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"lab: linkerd install failed: {done.stderr.strip()[-600:]}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if isinstance(doc, dict)]


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in objects:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise LabError(f"lab: `linkerd install` rendered no {kind} {name}")


def _data(doc: dict[str, Any], key: str) -> bytes:
    if key in (doc.get("stringData") or {}):
        return str(doc["stringData"][key]).encode()
    value = (doc.get("data") or {})[key]
    return base64.b64decode(value) if doc["kind"] == "Secret" else str(value).encode()


# ------------------------------------------------------------------ pods


@dataclass(frozen=True)
class PodPlan:
    """One control-plane pod as the lab runs it."""

    role: str
    name: str
    account: str
    ip: str
    spec: dict[str, Any]

    def container(self, name: str) -> dict[str, Any]:
        for item in [*self.spec.get("initContainers", []), *self.spec["containers"]]:
            if item["name"] == name:
                return dict(item)
        raise LabError(f"lab: the {self.role} pod has no container {name}")


def start_pod(
    lab: Lab, client: Any, sources: LabSources, objects: list[dict[str, Any]], role: str
) -> None:
    deployment, account = PODS[role]
    template = _find(objects, "Deployment", deployment)["spec"]["template"]
    pod_name = f"{deployment}-lab"
    plan = PodPlan(role, pod_name, account, lab.addresses.pods[role], template["spec"])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": "linkerd",
            "labels": template["metadata"].get("labels", {}),
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": {**template["spec"], "nodeName": NODE_NAME},
    }
    kube.running_pod(client, pod, plan.ip)
    folder = lab.folder / "pods" / role
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    binds = _pod_files(lab, client, sources, objects, plan, folder)
    env = proxy_environment(plan, objects)
    _container(
        lab,
        role,
        plan.ip,
        ["bash", f"{folder}/entry.sh"],
        binds=binds,
        env=env,
        cap_add=("NET_ADMIN", "NET_RAW"),
        dns=(lab.dns,),
        tmpfs={"/var/run/linkerd/identity/end-entity": "mode=1777"},
    )


def _owned(path: Path, data: bytes, uid: int, mode: int = 0o400) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.chown(path, uid, uid)
    return path


def _pod_files(
    lab: Lab,
    client: Any,
    sources: LabSources,
    objects: list[dict[str, Any]],
    plan: PodPlan,
    folder: Path,
) -> dict[str, str]:
    """Write what the pod spec would mount; the binds for the container."""
    token = kube.service_account_token(client, plan.account, "linkerd", "identity.l5d.io")
    identity_token = _owned(folder / "identity-token", token.encode(), PROXY_UID)
    api_token = kube.service_account_token(client, plan.account, "linkerd")
    config = folder / "kubeconfig"
    server = f"https://{lab.addresses.apiserver}:{APISERVER_PORT}"
    ca = (lab.folder / "apiserver" / "certs" / "apiserver.crt").read_bytes()
    write_kubeconfig(config, server, ca, api_token)
    os.chown(config, CONTROLLER_UID, CONTROLLER_UID)
    binds = {
        str(sources.proxy): "/usr/lib/linkerd/linkerd2-proxy:ro",
        str(sources.proxy_identity): "/usr/lib/linkerd/proxy-identity:ro",
        str(identity_token): "/var/run/secrets/tokens/linkerd-identity-token:ro",
        str(folder): f"{folder}:ro",
    }
    if plan.role == "identity":
        issuer = _find(objects, "Secret", "linkerd-identity-issuer")
        roots = _find(objects, "ConfigMap", "linkerd-identity-trust-roots")
        for key in ("crt.pem", "key.pem"):
            path = _owned(folder / "issuer" / key, _data(issuer, key), CONTROLLER_UID)
            binds[str(path)] = f"/var/run/linkerd/identity/issuer/{key}:ro"
        roots_file = _owned(
            folder / "ca-bundle.crt", _data(roots, "ca-bundle.crt"), CONTROLLER_UID, 0o444
        )
        binds[str(roots_file)] = "/var/run/linkerd/identity/trust-roots/ca-bundle.crt:ro"
    else:
        tls = _find(objects, "Secret", "linkerd-policy-validator-k8s-tls")
        for key in ("tls.crt", "tls.key"):
            path = _owned(folder / "policy-tls" / key, _data(tls, key), CONTROLLER_UID)
            binds[str(path)] = f"/var/run/linkerd/tls/{key}:ro"
    binds[str(sources.controller)] = "/lab/bin/controller:ro"
    binds[str(sources.policy_controller)] = "/lab/bin/policy-controller:ro"
    (folder / "entry.sh").write_text(entry_script(plan, config))
    return binds


def controller_commands(plan: PodPlan, kubeconfig: Path) -> list[list[str]]:
    """Each controller container of the pod, with the args `linkerd install` gave it."""
    commands = []
    for name, program, flag in (
        ("identity", "/lab/bin/controller", "-kubeconfig"),
        ("destination", "/lab/bin/controller", "-kubeconfig"),
        ("policy", "/lab/bin/policy-controller", "--kubeconfig"),
    ):
        if not any(c["name"] == name for c in plan.spec["containers"]):
            continue
        args = [str(arg) for arg in plan.container(name).get("args", [])]
        commands.append([program, *args, f"{flag}={kubeconfig}"])
    return commands


def entry_script(plan: PodPlan, kubeconfig: Path) -> str:
    """The pod's processes: an inbound capture (as proxy-init's), the controllers as
    UID 2103, the proxy as UID 2102 through proxy-identity; one ending ends the pod.
    """
    starts = "\n".join(
        f"start {CONTROLLER_UID} {' '.join(shlex.quote(word) for word in command)}"
        for command in controller_commands(plan, kubeconfig)
    )
    return f"""#!/bin/bash
# The {plan.role} pod of a meshexp-build lab (written by builder/lab/).
set -u
export HOSTNAME={plan.name}
capture() {{
  iptables -t nat -N PROXY_INIT_REDIRECT &&
    iptables -t nat -A PROXY_INIT_REDIRECT -p tcp -m multiport \\
      --dports 4190,4191,4567,4568 -j RETURN &&
    iptables -t nat -A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-port 4143 &&
    iptables -t nat -A PREROUTING -p tcp -j PROXY_INIT_REDIRECT
}}
capture || {{ echo "lab: the inbound capture could not be installed" >&2; exit 1; }}
start() {{
  local uid=$1
  shift
  setpriv --reuid "$uid" --regid "$uid" --clear-groups -- "$@" &
}}
{starts}
start {PROXY_UID} /usr/lib/linkerd/proxy-identity
wait -n
echo "lab: a process of the {plan.role} pod ended; stopping it" >&2
exit 1
"""


FIELD_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def proxy_environment(plan: PodPlan, objects: list[dict[str, Any]]) -> dict[str, str]:
    """The proxy container's env as a kubelet would give it: field and ConfigMap
    references filled in, $(VAR) expanded from the variables before it.
    """
    fields = {
        "metadata.name": plan.name,
        "metadata.namespace": "linkerd",
        "metadata.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, plan.name)),
        "status.podIP": plan.ip,
        "status.podIPs": plan.ip,
        "spec.nodeName": NODE_NAME,
        "spec.serviceAccountName": plan.account,
    }
    env: dict[str, str] = {}
    for item in plan.container("linkerd-proxy").get("env", []):
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            value = fields[source["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = _data(_find(objects, "ConfigMap", ref["name"]), ref["key"]).decode()
        else:
            value = FIELD_REF.sub(lambda m: env.get(m[1], m[0]), str(item.get("value", "")))
        env[item["name"]] = value
    return env


def endpoint_slices(client: Any, lab: Lab, objects: list[dict[str, Any]]) -> None:
    """EndpointSlices for Linkerd's Services (no controller-manager makes them)."""
    pods = {
        role: (f"{PODS[role][0]}-lab", _find(objects, "Deployment", PODS[role][0])) for role in PODS
    }
    slices = []
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"].get("selector") or {}
        for role, (pod_name, deployment) in pods.items():
            labels = deployment["spec"]["template"]["metadata"].get("labels", {})
            if selector and selector.items() <= labels.items():
                slices.append(_slice(service, role, pod_name, deployment, lab.addresses.pods[role]))
    kube.apply_documents(client, slices)


def _slice(
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


# ------------------------------------------------------------------ DNS


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
    docker_engine.signal_container(f"{lab.name}-dns", "SIGHUP")


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
    _container(lab, "dns", lab.dns, command, binds={str(folder): f"{folder}:ro"})


# ------------------------------------------------------------------ status, down


def proxy_ready(ip: str) -> bool:
    with (
        contextlib.suppress(urllib.error.URLError, OSError),
        urllib.request.urlopen(f"http://{ip}:4191/ready", timeout=2) as answer,
    ):
        return bool(answer.status == 200)
    return False


def wait_until_ready(lab: Lab, timeout: float = READY_TIMEOUT) -> None:
    """Both control-plane proxies ready (certified by the identity controller)."""
    deadline = time.monotonic() + timeout
    waiting = dict(lab.addresses.pods)
    while waiting and time.monotonic() < deadline:
        for role, ip in list(waiting.items()):
            state = docker_engine.container_state(f"{lab.name}-{role}")
            if not state.get("Running"):
                logs = docker_engine.container_logs(f"{lab.name}-{role}")[-2000:]
                raise LabNotUp(f"lab: the {role} pod stopped:\n{logs}")
            if proxy_ready(ip):
                del waiting[role]
        time.sleep(0.5)
    if waiting:
        role = next(iter(waiting))
        logs = docker_engine.container_logs(f"{lab.name}-{role}")[-2000:]
        raise LabNotUp(f"lab: the {role} pod's proxy was not ready in {timeout:.0f}s:\n{logs}")


@dataclass(frozen=True)
class ComponentState:
    name: str
    role: str
    status: str
    detail: str


def lab_status(*, folder: Path) -> tuple[Lab, list[ComponentState]]:
    lab = Lab.load(folder)
    states = []
    for found in docker_engine.labelled_containers(LABEL, lab.name):
        role = found["labels"].get(f"{LABEL}.role", "?")
        detail = ""
        if role in lab.addresses.pods:
            ready = proxy_ready(lab.addresses.pods[role])
            detail = f"proxy {'ready' if ready else 'not ready'} at {lab.addresses.pods[role]}"
        states.append(ComponentState(found["name"], role, found["status"], detail))
    return lab, sorted(states, key=lambda s: s.name)


def lab_down(*, name: str = "meshexp-lab", folder: Path | None = None) -> list[str]:
    """Remove every container and network of the lab, and its server's data."""
    # Workloads `run` put on the lab's network go with it.
    attached = [f"container {c}" for c in docker_engine.network_containers(name)]
    docker_engine.remove_network(name)
    removed = attached + docker_engine.remove_labelled(LABEL, name)
    if folder is not None:
        for state in ("apiserver", "pods", "dns", "lab.json", "kubeconfig"):
            path = folder / state
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def running_lab(**kwargs: Any) -> Iterator[Lab]:
    """A lab for the length of a block (tests, benchmarks), removed afterwards."""
    lab = lab_up(**kwargs)
    try:
        yield lab
    finally:
        lab_down(name=lab.name, folder=lab.folder)


def service_address(lab: Lab, name: str, namespace: str) -> str:
    """The ClusterIP the API server gave Service `name` (no kube-proxy routes it: a
    meshed client's proxy resolves it through the destination controller).
    """
    from lightkube.resources.core_v1 import Service

    client = kube.connect(lab.kubeconfig)
    found = client.get(Service, name, namespace=namespace)
    if found.spec is None or not found.spec.clusterIP:
        raise LabError(f"lab: Service {namespace}/{name} has no ClusterIP")
    return str(found.spec.clusterIP)


def run_in_lab(*, lab: Lab, **run: Any) -> Any:
    """`run` a workload into the lab: on its network, with its DNS and certificates,
    its ExternalWorkload and Service applied and Ready, and its Service's name in DNS.
    """
    from builder.cluster.run import run_workload

    run.setdefault("certs", lab.folder / "certs")
    result = run_workload(
        network=lab.network, dns=[lab.dns], kubeconfig=lab.kubeconfig, apply=True, **run
    )
    env = run.get("env") or {}
    workload = run["workload"]
    name = env.get("WORKLOAD_NAME", workload.name)
    namespace = env.get("WORKLOAD_NAMESPACE", workload.namespace)
    address = service_address(lab, name, namespace)
    add_dns_records(lab, {f"{name}.{namespace}.svc.cluster.local": address})
    return result


# ------------------------------------------------------------------ programs from images

IMAGES = {
    "controller": "cr.l5d.io/linkerd/controller",
    "policy_controller": "cr.l5d.io/linkerd/policy-controller",
    "proxy": "cr.l5d.io/linkerd/proxy",
}
PROXY_IN_IMAGE = "/usr/lib/linkerd/linkerd2-proxy"


def linkerd_version(linkerd: Path) -> str:
    """The release of the linkerd CLI (`edge-26.8.3`), which names the images to use."""
    done = subprocess.run(
        [str(linkerd), "version", "--client", "--short"],
        capture_output=True,
        text=True,
        check=False,
    )
    version = done.stdout.strip()
    if done.returncode != 0 or not re.match(r"^(edge|stable|enterprise)-[0-9.]+", version):
        raise LabError(f"lab: `{linkerd} version --client --short` said {version!r}")
    return version


def _program(entrypoint: list[str]) -> str:
    """The program an entrypoint runs: past an init (tini ... --) where there is one."""
    if "--" in entrypoint:
        return entrypoint[entrypoint.index("--") + 1]
    return entrypoint[0]


def sources_from_images(linkerd: Path, cache: Path) -> LabSources:
    """Linkerd's programs copied out of its own images, for the CLI's release
    (pulled from cr.l5d.io where missing; cached by release in `cache`).
    """
    version = linkerd_version(linkerd)
    folder = cache / version
    found: dict[str, Path] = {}
    for key, repository in IMAGES.items():
        reference = f"{repository}:{version}"
        path = _program(docker_engine.image_entrypoint(reference))
        target = folder / ("proxy-identity" if key == "proxy" else Path(path).name)
        if not target.is_file():
            docker_engine.copy_from_image(reference, path, target)
        found["proxy_identity" if key == "proxy" else key] = target
        if key == "proxy":
            proxy = folder / "linkerd2-proxy"
            if not proxy.is_file():
                docker_engine.copy_from_image(reference, PROXY_IN_IMAGE, proxy)
            found["proxy"] = proxy
    return LabSources(linkerd=linkerd, **found).check()
