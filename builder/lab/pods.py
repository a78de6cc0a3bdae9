"""The identity and destination "pods": each a container running Linkerd's controllers and a
real proxy (through proxy-identity) with the files, tokens and environment a kubelet gives.
"""

from __future__ import annotations

import re
import shlex
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.cluster import kube
from builder.cluster.apiserver import (
    write_kubeconfig,
)
from builder.core.files import write_secret
from builder.lab.layout import (
    APISERVER_PORT,
    CONTROLLER_UID,
    NODE_NAME,
    PODS,
    PROXY_UID,
    Lab,
    LabError,
    LabSources,
    lab_container,
)
from builder.lab.objects import find_object, object_data


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
    template = find_object(objects, "Deployment", deployment)["spec"]["template"]
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
    binds = pod_files(lab, client, sources, objects, plan, folder)
    env = proxy_environment(plan, objects)
    lab_container(
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


def owned_file(path: Path, data: bytes, uid: int, mode: int = 0o400) -> Path:
    """A file of the pod's (a key, a token) owned by `uid`, with its mode from the start."""
    return write_secret(path, data, mode, owner=uid)


def pod_files(
    lab: Lab,
    client: Any,
    sources: LabSources,
    objects: list[dict[str, Any]],
    plan: PodPlan,
    folder: Path,
) -> dict[str, str]:
    """Write what the pod spec would mount; the binds for the container."""
    token = kube.service_account_token(client, plan.account, "linkerd", "identity.l5d.io")
    identity_token = owned_file(folder / "identity-token", token.encode(), PROXY_UID)
    api_token = kube.service_account_token(client, plan.account, "linkerd")
    config = folder / "kubeconfig"
    server = f"https://{lab.addresses.apiserver}:{APISERVER_PORT}"
    ca = (lab.folder / "apiserver" / "certs" / "apiserver.crt").read_bytes()
    write_kubeconfig(config, server, ca, api_token, owner=CONTROLLER_UID)
    binds = {
        str(sources.proxy): "/usr/lib/linkerd/linkerd2-proxy:ro",
        str(sources.proxy_identity): "/usr/lib/linkerd/proxy-identity:ro",
        str(identity_token): "/var/run/secrets/tokens/linkerd-identity-token:ro",
        str(folder): f"{folder}:ro",
    }
    if plan.role == "identity":
        issuer = find_object(objects, "Secret", "linkerd-identity-issuer")
        roots = find_object(objects, "ConfigMap", "linkerd-identity-trust-roots")
        for key in ("crt.pem", "key.pem"):
            path = owned_file(folder / "issuer" / key, object_data(issuer, key), CONTROLLER_UID)
            binds[str(path)] = f"/var/run/linkerd/identity/issuer/{key}:ro"
        roots_file = owned_file(
            folder / "ca-bundle.crt", object_data(roots, "ca-bundle.crt"), CONTROLLER_UID, 0o444
        )
        binds[str(roots_file)] = "/var/run/linkerd/identity/trust-roots/ca-bundle.crt:ro"
    else:
        tls = find_object(objects, "Secret", "linkerd-policy-validator-k8s-tls")
        for key in ("tls.crt", "tls.key"):
            path = owned_file(folder / "policy-tls" / key, object_data(tls, key), CONTROLLER_UID)
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
# The proxy's key goes here, for its UID alone. Set on every start: a restarted
# container gets its tmpfs back as root's 0755 (mode=1777 applies to the first start
# only), where proxy-identity could not write its key; and it starts afresh, as a
# new pod would.
end_entity=/var/run/linkerd/identity/end-entity
rm -rf "${{end_entity:?}}"/* &&
  chown {PROXY_UID}:{PROXY_UID} "$end_entity" && chmod 0700 "$end_entity" ||
  {{ echo "lab: $end_entity could not be made the proxy's" >&2; exit 1; }}
start() {{
  local uid=$1
  shift
  setpriv --reuid "$uid" --regid "$uid" --clear-groups -- "$@" &
}}
# `docker stop` and `docker restart` send SIGTERM, as a kubelet does: pass it on and
# end (bash as PID 1 would ignore it, and the engine would wait 10 s to kill the pod).
on_term() {{
  kill -TERM $(jobs -p) 2>/dev/null
  wait
  exit 143
}}
trap on_term TERM INT
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
            value = object_data(find_object(objects, "ConfigMap", ref["name"]), ref["key"]).decode()
        else:
            value = FIELD_REF.sub(lambda m: env.get(m[1], m[0]), str(item.get("value", "")))
        env[item["name"]] = value
    return env
