"""The walk-through's registration by identity (issue 35), after the external smiley was
stopped: the registration service installed in the cluster, a second smiley that
registers itself (`docker run` with MESHEXP_REGISTRAR, no kubeconfig on its side),
face's answers coming from it, the service's pod deleted under that load with nothing
lost, its probe failing (Ready False), and `docker stop` removing its
ExternalWorkload at once; an identity the group does not admit is refused.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import yaml

from builder.build.upstream import ensure_image
from builder.check.answers import CURSING, smiley_share
from builder.check.walkthrough.observe import face_answers
from builder.check.walkthrough.walk import Walk, one_line
from builder.cluster import kube
from builder.cluster.run import Route, run_workload
from builder.config.catalog import find_workload
from builder.core import wait
from builder.core.errors import CheckError
from builder.core.image_contract import ImageContract
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.registration import install

NAMESPACE = "meshexp"
SELF = "smiley-self"  # the self-registered smiley: its identity, and so its name
INTRUDER = "intruder"  # an identity the group's names (smiley-*) do not admit
ROLLING_EYES = "&#x1F644;"  # what it answers (SMILEY=RollingEyes)
PERIOD, FAILURES, GRACE = 5, 2, 60
IMAGE = "meshexp-e2e/registrar:latest"


def group(walk: Walk) -> dict[str, Any]:
    """The smileys' RegistrationGroup: names smiley-*, from the cluster's Docker network;
    no Service of its own (the Faces chart's selects every app=smiley)."""
    spec = {
        "workload": "smiley",
        "trustDomain": walk.settings.trust_domain,
        "identityStyle": walk.settings.identity,
        "names": ["smiley-*"],
        # both families where the network has both (kind's is dual-stack): the
        # bootstrap declares an address of each
        "networks": [
            subnet
            for version in (4, 6)
            if (subnet := docker_engine.network_subnet(walk.config.network, version))
        ],
        "ports": [{"name": "http", "port": 8000}],
        "probe": {"path": "/", "port": 8000},
        "heartbeat": {"periodSeconds": PERIOD, "failureThreshold": FAILURES, "graceSeconds": GRACE},
        "service": {"enabled": False},
    }
    return install.group_document("smiley", "faces", spec)


def install_registrar(walk: Walk) -> None:
    """`registrar image`, loaded into the cluster; `registrar install` for faces; the
    smileys' group."""
    config = walk.config
    base = walk.settings.resolved_base_image
    if not walk.settings.offline:  # upstream's Debian, through the settings' mirrors
        base = ensure_image(base, walk.settings, Progress()).used
    install.build_service_image(IMAGE, base)
    walk.run(config.provider.load_image(config.cluster, IMAGE))
    install.install(
        kubeconfig=config.kubeconfig, namespace=NAMESPACE, group_namespaces=["faces"], image=IMAGE
    )
    walk.kubectl(
        "-n", NAMESPACE, "rollout", "status", f"deployment/{install.NAME}", "--timeout=180s"
    )
    walk.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(group(walk)))


def self_state(walk: Walk) -> str | None:
    """The self-registered smiley's Ready status ("" unset), None where it has no
    ExternalWorkload."""
    found = kube.get_object(walk.api, kube.ObjectRef("ExternalWorkload", SELF, "faces"))
    if found is None:
        return None
    conditions = (found.get("status") or {}).get("conditions") or []
    return str(next((c.get("status") for c in conditions if c.get("type") == "Ready"), ""))


def wait_ready(walk: Walk, wanted: str | None, timeout: float = 90) -> None:
    """Until the self-registered smiley's Ready is `wanted` (None: until it is gone)."""

    def there() -> bool | wait.NotYet:
        try:
            status = self_state(walk)
        except kube.KubeError as exc:
            return wait.NotYet(one_line(exc, 300))
        return status == wanted or wait.NotYet(f"Ready is {status!r}")

    wait.until(there, timeout=timeout, interval=1.0)


def start_self_registering(walk: Walk, name: str, smiley: str) -> str:
    """The walk-through's `docker run` of smiley as `name`, plus MESHEXP_REGISTRAR and
    MESHEXP_GROUP, and no kubeconfig: its container's name."""
    config = walk.config
    container = f"{config.cluster}-{name}"
    walk.cleanup.containers.append(container)
    walk.cleanup.push(
        f"remove {container}", functools.partial(docker_engine.remove_container, container)
    )
    run_workload(
        workload=find_workload("smiley"),
        settings=walk.settings,
        certs=config.certs,
        network=config.network,
        manifests_dir=config.certs.parent / "self-registered",
        image=walk.images["smiley"],
        name=container,
        dns=[walk.dns_ip],
        routes=[Route(walk.found["pod_cidr"], walk.found["node_ip"])],
        env={
            "WORKLOAD_NAME": name,
            "SMILEY": smiley,
            "MESHEXP_REGISTRAR": f"{install.NAME}.{NAMESPACE}.svc.cluster.local:{install.PORT}",
            "MESHEXP_GROUP": "smiley",
        },
    )
    return container


def registration_lines(container: str) -> list[str]:
    return [
        line
        for line in docker_engine.container_logs(container).splitlines()
        if "registration" in line or "ERROR" in line
    ]


def a_smiley_registers_itself(walk: Walk) -> None:
    """A smiley whose identity the group admits comes Ready with no kubeconfig on its
    side, and face's answers are its own; one whose identity it does not admit (the
    name `intruder`) is refused and has no ExternalWorkload."""
    container = start_self_registering(walk, SELF, "RollingEyes")
    intruder = start_self_registering(walk, INTRUDER, "Cursing")
    try:
        wait_ready(walk, "True")
    except wait.TimedOut as exc:
        said = " | ".join(registration_lines(container)[-3:])
        raise CheckError(f"e2e: {exc.reason}; {container} said: {said}") from None
    walk.self_registered = _share_until(walk, ROLLING_EYES)

    def refused() -> bool | wait.NotYet:
        lines = registration_lines(intruder)
        return any("refused" in line and " 403 " in line for line in lines) or wait.NotYet(
            f"{intruder} said: {' | '.join(lines[-2:]) or 'nothing yet'}"
        )

    wait.until(refused, timeout=60, interval=1.0)
    if kube.get_object(walk.api, kube.ObjectRef("ExternalWorkload", INTRUDER, "faces")):
        raise CheckError(f"e2e: the group admitted {INTRUDER}, whose identity it does not name")
    docker_engine.remove_container(intruder)


def _share_until(walk: Walk, smiley: str, timeout: float = 60) -> float:
    """face's share of `smiley`, once its answers carry it (a newcomer to face's
    balancer is chosen within seconds to tens of seconds)."""
    deadline_share: list[float] = []

    def carried() -> bool | wait.NotYet:
        answers = face_answers(walk.config, walk.found, walk.images["smiley"], 10)
        deadline_share[:] = [smiley_share(answers, smiley)]
        return deadline_share[0] > 0.9 or wait.NotYet(f"{deadline_share[0]:.0%} {smiley}")

    wait.until(carried, timeout=timeout, interval=1.0)
    answers = face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    return smiley_share(answers, smiley)


def the_registrar_pod_is_deleted(walk: Walk) -> None:
    """The service's pod deleted while face calls the self-registered smiley: its
    ExternalWorkload is neither rewritten nor lost, and face's answers stay its own."""
    before = walk.get("ExternalWorkload", SELF, "faces")["metadata"]["resourceVersion"]
    walk.kubectl("-n", NAMESPACE, "delete", "pod", "-l", f"app.kubernetes.io/name={install.NAME}")
    answers = face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    walk.kubectl(
        "-n", NAMESPACE, "rollout", "status", f"deployment/{install.NAME}", "--timeout=180s"
    )
    time.sleep(PERIOD * 2)  # two heartbeats to the new pod: it must write nothing
    answers += face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    after = walk.get("ExternalWorkload", SELF, "faces")["metadata"]["resourceVersion"]
    walk.through_restart = smiley_share(answers, ROLLING_EYES)
    if after != before:
        raise CheckError(
            f"e2e: the restarted registration service rewrote {SELF} ({before} -> {after})"
        )
    if walk.through_restart < 0.9:
        raise CheckError(
            f"e2e: while the registration service restarted, face's answers were "
            f"{walk.through_restart:.0%} the self-registered smiley's"
        )


def refuse_the_probe(container: str, add: bool) -> None:
    """Refuse (or allow again) the bootstrap's probe of its workload (root to port 8000
    on loopback); the proxy, another UID, still reaches the workload."""
    labels = docker_engine.image_attrs(docker_engine.inspect_if_exists(container)["Image"])
    mode = ImageContract.from_labels(labels["Config"]["Labels"] or {}).iptables_mode
    rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", "8000", "-m", "owner"]
    rule += ["--uid-owner", "0", "-j", "REJECT", "--reject-with", "tcp-reset"]
    code, out = docker_engine.exec_in(container, [f"iptables-{mode}", "-I" if add else "-D", *rule])
    if code != 0:
        raise CheckError(f"e2e: iptables in {container}: {out.strip()[-300:]}")


def the_self_registered_smiley_stops(walk: Walk) -> None:
    """Its probe fails: the service turns it Ready False and face falls back. Then
    `docker stop`: the bootstrap deregisters and its ExternalWorkload goes at once (not
    after the group's grace)."""
    container = f"{walk.config.cluster}-{SELF}"
    refuse_the_probe(container, add=True)
    wait_ready(walk, "False", timeout=PERIOD * (FAILURES + 2) + 30)
    answers = face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    walk.probe_fallback = smiley_share(answers, CURSING)
    if walk.probe_fallback < 0.9:
        raise CheckError(
            "e2e: face did not fall back while the self-registered smiley's probe failed"
        )
    stopped = time.monotonic()
    docker_engine.stop_container(container, timeout=10)
    wait_ready(walk, None, timeout=GRACE / 2)
    walk.deregistered_after = time.monotonic() - stopped
