"""`check --lab`: the outbound check through a real control plane.

Without a control plane the real proxy holds every outbound connection (the
isolated check proves only that the connection landed on the proxy). In the
mesh lab it completes: the image runs twice there, as ExternalWorkloads
`<name>-check` and `<name>-check-peer`; the first one's workload UID calls the peer's
Service in the port's protocol, and the caller's proxy must report that call
as mTLS to the peer's own identity.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from builder.build.from_image import settle, workload_of_image
from builder.check.checks import check_image
from builder.check.listings import metric_series
from builder.check.live import http_status
from builder.check.report import CheckReport, ImageFacts, require
from builder.check.traffic import port_probes
from builder.cluster.run import stop_workload
from builder.config.settings import Settings, load_settings
from builder.core.progress import Progress
from builder.engine import docker_engine
from builder.lab import Lab, run_in_lab


def outbound_to(metrics: str, workload: str) -> list[dict[str, str]]:
    """The proxy's outbound tcp_open_total series to the ExternalWorkload `workload`."""
    return [
        labels
        for labels, _ in metric_series(metrics, "tcp_open_total")
        if labels.get("direction") == "outbound" and labels.get("dst_external_workload") == workload
    ]


def check_outbound_in_lab(*, image: str, lab: Lab, catalog: Sequence[Path] = ()) -> str:
    facts = ImageFacts(dict(docker_engine.image_attrs(image)["Config"].get("Labels") or {}))
    name, namespace = facts.workload, facts.namespace
    settings = load_settings(
        None,
        {
            "linkerd_version": facts.linkerd_version,
            "trust_domain": facts.trust_domain,
            "identity": facts.identity,
        },
    )
    # The catalog's entry, or the workload an image made --from its application makes.
    workload = settle(workload_of_image(facts.need(), catalog), settings, Progress())
    # Names of their own, so that a workload of the image's name already in the
    # lab is left alone.
    subject, peer = f"{name}-check", f"{name}-check-peer"
    containers = {subject: f"meshexp-{subject}", peer: f"meshexp-{peer}"}
    with tempfile.TemporaryDirectory(prefix="meshexp-check-lab-") as scratch:
        manifests = Path(scratch)
        try:
            for as_name, container in containers.items():
                run_in_lab(
                    lab=lab,
                    workload=workload,
                    settings=settings,
                    manifests_dir=manifests,
                    image=image,
                    name=container,
                    env={"WORKLOAD_NAME": as_name},
                )
            return _call_peer(facts, containers[subject], peer, namespace, settings, lab.network)
        finally:
            for container in containers.values():
                stop_workload(name=container, manifests_dir=manifests, kubeconfig=lab.kubeconfig)


def _call_peer(
    facts: ImageFacts, container: str, peer: str, namespace: str, settings: Settings, network: str
) -> str:
    probe = port_probes(facts)[0]
    host = f"{peer}.{namespace}.svc.cluster.local"
    script = probe.script(host)
    if probe.protocol == "opaque":  # nothing to read: hold the connection while it is made
        script += " && sleep 2"
    code, output = docker_engine.exec_in(
        container, ["bash", "-c", script], user=str(facts.workload_uid)
    )
    result = probe.read(output)
    require(result.answered, f"the call to {host} {probe.describe()}: {result.summary} ({code})")
    ip = docker_engine.container_ip(container, network)
    _, metrics = http_status(ip, 4191, "/metrics")
    series = outbound_to(metrics, peer)
    require(series, f"the proxy reports no outbound connection to ExternalWorkload {peer}")
    wanted = settings.identity_of(namespace, peer).spiffe_id
    for labels in series:
        require(labels.get("tls") == "true", f"the call to {peer} was not mTLS: {labels}")
        require(
            labels.get("server_id") == wanted,
            f"the call to {peer} reached {labels.get('server_id')}, not {wanted}",
        )
    return (
        f"{probe.describe()} of {host}: {result.summary}; over mTLS to {wanted} through the "
        "control plane"
    )


def check_image_in_lab(
    *,
    image: str,
    certs: Path | None,
    env: dict[str, str],
    timeout: float,
    lab_dir: Path | None,
    catalog: Sequence[Path] = (),
) -> CheckReport:
    """Every check of `check IMAGE`; with `lab_dir`, also outbound through that lab's mesh."""
    report = check_image(image=image, certs=certs, env=env, timeout=timeout)
    if lab_dir is not None:
        in_lab = Lab.load(lab_dir)
        report.add(
            "capture: outbound through the mesh (lab)",
            lambda: check_outbound_in_lab(image=image, lab=in_lab, catalog=catalog),
        )
    return report
