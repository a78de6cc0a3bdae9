"""A check report: named pass/fail results with a detail line, as text, JSON or JUnit XML;
and what the image's labels say it should be (ImageFacts, its inbound policy).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree

from builder.core import image_contract
from builder.core.errors import CheckError, MeshexpError

Exec = Callable[[list[str], str], tuple[int, str]]  # (command, user) -> (exit code, output)


class CheckFailed(Exception):
    """One check's failure, with the reason a user reads."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class CheckReport:
    image: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

    def add(self, name: str, run: Callable[[], str]) -> None:
        """Run one check; an assertion or error becomes a failed result with its reason."""
        start = time.monotonic()
        try:
            detail = run()
            passed = True
        except (CheckFailed, MeshexpError, OSError, ValueError) as exc:
            detail = str(getattr(exc, "message", exc)) or exc.__class__.__name__
            passed = False
        self.results.append(CheckResult(name, passed, detail, time.monotonic() - start))

    def junit(self) -> str:
        suite = ElementTree.Element(
            "testsuite",
            name=f"meshexp-build check {self.image}",
            tests=str(len(self.results)),
            failures=str(sum(not r.passed for r in self.results)),
        )
        for result in self.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname="meshexp.check",
                name=result.name,
                time=f"{result.seconds:.3f}",
            )
            if not result.passed:
                ElementTree.SubElement(
                    case, "failure", message=result.detail[:200]
                ).text = result.detail
            else:
                ElementTree.SubElement(case, "system-out").text = result.detail
        return ElementTree.tostring(suite, encoding="unicode")


REQUIRED_LABELS = (
    image_contract.WORKLOAD,
    image_contract.PROXY_UID,
    image_contract.WORKLOAD_UID,
    image_contract.TRUST_DOMAIN,
    image_contract.IPTABLES_MODE,
)


@dataclass(frozen=True)
class ImageFacts:
    """What the image's labels say it should be, read through its contract
    (builder.core.image_contract): a fact a check needs is required, and a label that is
    missing or does not say what it should is one CheckError naming it."""

    labels: dict[str, str]

    def need(self, *names: str) -> image_contract.ImageContract:
        try:
            contract = image_contract.ImageContract.from_labels(self.labels)
            contract.require(*names)
        except image_contract.ContractError as exc:
            raise CheckError(str(exc)) from None
        return contract

    def _uid(self, name: str) -> int:
        contract = self.need(name)
        uids = {
            image_contract.PROXY_UID: contract.proxy_uid,
            image_contract.SPIRE_UID: contract.spire_uid,
            image_contract.WORKLOAD_UID: contract.workload_uid,
        }
        uid = uids[name]
        assert uid is not None  # required above
        return uid

    @property
    def proxy_uid(self) -> int:
        return self._uid(image_contract.PROXY_UID)

    @property
    def spire_uid(self) -> int:
        return self._uid(image_contract.SPIRE_UID)

    @property
    def workload_uid(self) -> int:
        return self._uid(image_contract.WORKLOAD_UID)

    @property
    def workload(self) -> str:
        return self.need(image_contract.WORKLOAD).workload

    @property
    def namespace(self) -> str:
        return self.need(image_contract.WORKLOAD_NAMESPACE).namespace

    @property
    def trust_domain(self) -> str:
        return self.need(image_contract.TRUST_DOMAIN).trust_domain

    @property
    def linkerd_version(self) -> str:
        return self.need(image_contract.LINKERD_VERSION).linkerd_version

    @property
    def identity(self) -> str:
        """The identity style (the walk-through's for images from before the label)."""
        return self.need().identity

    @property
    def readiness(self) -> str:
        return self.need(image_contract.READINESS).readiness

    @property
    def iptables_mode(self) -> str:
        return self.need(image_contract.IPTABLES_MODE).iptables_mode

    @property
    def spire_topology(self) -> str:
        return self.need(image_contract.SPIRE_TOPOLOGY).spire_topology

    @property
    def port_numbers(self) -> list[int]:
        return list(self.need(image_contract.WORKLOAD_PORTS).port_numbers)

    @property
    def probes(self) -> tuple[str, ...]:
        return self.need().probes

    def ignored_ports(self, name: str) -> str:
        """INBOUND_ or OUTBOUND_PORTS_TO_IGNORE, as iptables' --dports lists them."""
        contract = self.need(name)
        ports = (
            contract.inbound_ports_to_ignore
            if name == image_contract.INBOUND_PORTS_TO_IGNORE
            else contract.outbound_ports_to_ignore
        )
        return ",".join(map(str, ports))


@dataclass(frozen=True)
class InboundPolicy:
    """The default inbound policy a container runs under, as the proxy applies it
    while no policy controller answers: to the workload's ports and to its own
    admin port alike. No client of a check is authenticated (it speaks plaintext).
    """

    name: str
    cluster_networks: tuple[str, ...] = ()

    @classmethod
    def of(cls, facts: ImageFacts, env: dict[str, str]) -> InboundPolicy:
        name = (
            env.get("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY")
            or facts.need().inbound_policy
            or "all-unauthenticated"
        )
        networks = env.get("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "")
        return cls(name, tuple(n.strip() for n in networks.split(",") if n.strip()))

    def admits(self, subnet: str) -> bool:
        """Whether a plaintext client from `subnet` passes."""
        if self.name in ("all-unauthenticated", "audit"):
            return True
        if self.name == "cluster-unauthenticated":
            client = ipaddress.ip_network(subnet, strict=False)
            return any(
                client.subnet_of(ipaddress.ip_network(net, strict=False))  # type: ignore[arg-type]
                for net in self.cluster_networks
                if ipaddress.ip_network(net, strict=False).version == client.version
            )
        return False  # deny, all-authenticated, cluster-authenticated
