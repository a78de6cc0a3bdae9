"""`meshexp-build check IMAGE`: prove an image meets the mesh contract.

Each check is a named pass/fail result with a detail line. The static ones
read the image (metadata, every layer's files); the live ones start it the way
the field does (its own network, NET_ADMIN and NET_RAW, certificates read-only)
and look at it from outside: identity, readiness, capture, least privilege and
a clean stop. The same checks run unchanged against the real Linkerd proxy.

The checks live in report (results, facts), static, live, traffic and listings; this
module runs them in order against one image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from builder.check.live import (
    check_binaries,
    check_identity,
    check_least_privilege,
    check_rules,
    check_stop,
    check_workload_readiness,
    wait_ready,
)
from builder.check.report import CheckReport, CheckResult, ImageFacts, InboundPolicy
from builder.check.static import check_metadata, check_no_key_material
from builder.check.traffic import check_inbound, check_ipv6, check_outbound
from builder.cluster.certs import create_certs
from builder.core.errors import CheckError
from builder.engine import containers, docker_engine


def check_image(
    *,
    image: str,
    certs: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CheckReport:
    """Every check against one image; never raises for a failed check, only for no engine."""
    attrs = docker_engine.image_attrs(image)
    facts = ImageFacts(dict(attrs["Config"].get("Labels") or {}))
    report = CheckReport(image)
    report.add("metadata", lambda: check_metadata(attrs))
    report.add("contents: no private key in any layer", lambda: check_no_key_material(image))
    env = dict(env or {})
    name = env.get("WORKLOAD_NAME") or facts.workload
    namespace = env.get("WORKLOAD_NAMESPACE") or facts.namespace
    policy = InboundPolicy.of(facts, env)
    with tempfile.TemporaryDirectory(prefix="meshexp-check-") as scratch:
        if certs is None:
            certs = Path(scratch) / "certs"
            create_certs(folder=certs)
        with containers.own_network(ipv6=True) as network:
            try:
                with containers.mesh_container(
                    image=image, network=network, certs=certs, env=env, timeout=timeout
                ) as box:
                    _live_checks(
                        report,
                        box,
                        facts,
                        (name, namespace),
                        certs / "ca.crt",
                        image,
                        timeout,
                        policy,
                    )
            except CheckError as exc:
                report.results.append(CheckResult("start", False, str(exc.message)))
    return report


def _live_checks(
    report: CheckReport,
    box: containers.MeshContainer,
    facts: ImageFacts,
    workload: tuple[str, str],
    anchor: Path,
    image: str,
    timeout: float,
    policy: InboundPolicy,
) -> None:
    name, namespace = workload
    report.add("readiness", lambda: wait_ready(box, timeout, policy))
    report.add(
        "workload readiness: the image's probe passes",
        lambda: check_workload_readiness(box, facts, timeout),
    )
    report.add("contents: binaries and their users", lambda: check_binaries(box, facts))
    report.add("identity", lambda: check_identity(box, facts, name, namespace, anchor))
    report.add("capture: rules", lambda: check_rules(box, facts))
    report.add(
        "capture: inbound through the proxy", lambda: check_inbound(box, facts, image, policy)
    )
    report.add(
        "capture: IPv6 never reaches the workload unmeshed",
        lambda: check_ipv6(box, facts, image, policy),
    )
    report.add("capture: outbound through the proxy", lambda: check_outbound(box, facts))
    report.add("least privilege", lambda: check_least_privilege(box, facts))
    report.add("stop", lambda: check_stop(box))
