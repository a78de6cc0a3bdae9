"""For the registration's tests and benchmark: what the engine's `docker inspect` shows of
a container of one of our images (for tests that need no engine), and a probe made to
fail while the workload lives; the walk-through's `docker run` line into the lab, and
the registrar running beside it."""

from __future__ import annotations

import hashlib
import socket
import threading
from typing import Any

from builder.cluster import kube
from builder.cluster.registrar import Registrar
from builder.config.catalog import find_workload
from builder.config.group import Group
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.lab import Lab, register_in_lab


def inspected(
    name: str,
    ip: str,
    *,
    running: bool = True,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    network: str = "faces",
    ipv6: str = "",
) -> dict[str, Any]:
    """A container of the smiley image, as `docker inspect` shows it; `env` is its `-e`;
    `ipv6`, its address on a dual-stack network."""
    smiley, settings = find_workload("smiley"), Settings()
    environment = {"WORKLOAD_NAME": "smiley", "WORKLOAD_NAMESPACE": "reg", **(env or {})}
    return {
        "Id": hashlib.sha256(name.encode()).hexdigest(),
        "Name": f"/{name}",
        "Config": {
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Labels": {
                "io.meshexp.workload": smiley.name,
                "io.meshexp.workload-namespace": smiley.namespace,
                "io.meshexp.ports": ",".join(port.label for port in smiley.ports),
                "io.meshexp.identity": settings.identity,
                "io.meshexp.trust-domain": settings.trust_domain,
                "io.meshexp.linkerd-release": settings.facts.release,
                **(labels or {}),
            },
        },
        "State": {"Running": running},
        "NetworkSettings": {
            "Networks": {
                network: {
                    "IPAddress": ip if running else "",
                    "GlobalIPv6Address": ipv6 if running else "",
                }
            }
        },
    }


def refuse_probe(name: str, add: bool) -> None:
    """Refuse (or allow again) the probe's connection: the workload's UID to its own port
    on loopback. The proxy (another UID) still reaches the workload."""
    attrs = docker_engine.inspect_if_exists(name)
    labels = attrs["Config"]["Labels"]
    rule = [
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        "8000",
        "-m",
        "owner",
        "--uid-owner",
        labels["io.meshexp.workload-uid"],
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]
    binary = f"iptables-{labels['io.meshexp.iptables-mode']}"
    code, out = docker_engine.exec_in(name, [binary, "-I" if add else "-D", *rule])
    if code != 0:
        raise AssertionError(f"{binary} in {name}: {out.strip()}")


def docker_run(engine: Any, lab: Lab, name: str, image: str, env: dict[str, str]) -> Any:
    """The walk-through's line, into the lab's network with its DNS:
    docker run -d --name NAME --network N --cap-add NET_ADMIN -v "$PWD/certs:/opt/spire/certs:ro"
      -e WORKLOAD_NAME=W -e WORKLOAD_NAMESPACE=faces -e NODE_NAME=$(hostname) IMAGE
    """
    docker_engine.remove_container(name)
    return engine.containers.run(
        image,
        name=name,
        detach=True,
        network=lab.network,
        dns=[lab.dns],
        cap_add=["NET_ADMIN"],
        volumes={str(lab.folder / "certs"): {"bind": "/opt/spire/certs", "mode": "ro"}},
        environment={"WORKLOAD_NAMESPACE": "faces", "NODE_NAME": socket.gethostname(), **env},
    )


def ready(client: Any, name: str) -> dict[str, Any] | None:
    return kube.ready_condition(name, "faces", client)


def all_ready(client: Any, names: list[str]) -> bool:
    return all((ready(client, name) or {}).get("status") == "True" for name in names)


class Running:
    """The registrar in a thread, as `meshexp-build register --lab` runs it."""

    def __init__(self, lab: Lab, owner: str) -> None:
        self.lines: list[str] = []
        self.registrar: Registrar = register_in_lab(
            lab=lab, group=Group(), owner=owner, say=self.lines.append
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.registrar.run, args=(self.stop.is_set,), daemon=True
        )
        self.thread.start()

    def end(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the registrar did not stop"


def serving(client: Any, service: str, namespace: str = "faces") -> set[str]:
    """The ExternalWorkloads that Linkerd's controller lists as ready behind `service`:
    what its EndpointSlices say, the destination's source for face's proxy."""
    slices = kube.list_objects(
        client, "EndpointSlice", {"kubernetes.io/service-name": service}, namespace
    )
    return {
        ref.get("name", "")
        for item in slices
        for endpoint in item.get("endpoints") or []
        if (ref := endpoint.get("targetRef") or {}).get("kind") == "ExternalWorkload"
        and (endpoint.get("conditions") or {}).get("ready")
    }
