"""The names an image of ours and the tool agree on: its labels and the bootstrap's log
lines. `render` writes them; `check`, the keeper, the registrar, the lab and `run` read
them, all through these names (tests/unit/test_image_contract.py fails when a template
writes a label or a log line that is not named here).

Each label carries one fact of the image's run-time contract:

- who it is: WORKLOAD, WORKLOAD_NAMESPACE, IDENTITY (the SVID's style), TRUST_DOMAIN;
- what listens: PORTS (NAME:PORT/PROTOCOL,...), WORKLOAD_PORTS (the numbers),
  PORT_PROTOCOLS (what `check` probes each with), READINESS (the probe, as JSON);
- who runs what: PROXY_UID, SPIRE_UID, WORKLOAD_UID;
- the capture: IPTABLES_MODE, INBOUND_POLICY, INBOUND_PORTS_TO_IGNORE,
  OUTBOUND_PORTS_TO_IGNORE;
- what it was built from: LINKERD_VERSION, LINKERD_RELEASE, PROXY_VERSION,
  PROXY_RELEASE, PROXY_STANDIN, SPIRE_VERSION, SPIRE_TOPOLOGY, SPIRE_MULTICALL,
  SPIRE_PLUGINS, BASE_IMAGE, APPLICATION_IMAGE, SOURCE_PREFIX (one per component),
  TOOL_VERSION.

Labels on other things the tool makes (the lab's containers, `run`'s, cached images)
are named here too, so that `io.meshexp.` is written in this module only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PREFIX = "io.meshexp."

# The image's labels --------------------------------------------------------------
TOOL_VERSION = "io.meshexp.tool-version"
WORKLOAD = "io.meshexp.workload"
WORKLOAD_NAMESPACE = "io.meshexp.workload-namespace"
LINKERD_VERSION = "io.meshexp.linkerd-version"
LINKERD_RELEASE = "io.meshexp.linkerd-release"
PROXY_VERSION = "io.meshexp.proxy-version"
PROXY_RELEASE = "io.meshexp.proxy-release"
PROXY_STANDIN = "io.meshexp.proxy-standin"
SPIRE_VERSION = "io.meshexp.spire-version"
SPIRE_TOPOLOGY = "io.meshexp.spire-topology"
SPIRE_MULTICALL = "io.meshexp.spire-multicall"
SPIRE_PLUGINS = "io.meshexp.spire-plugins"
IPTABLES_MODE = "io.meshexp.iptables-mode"
PROXY_UID = "io.meshexp.proxy-uid"
SPIRE_UID = "io.meshexp.spire-uid"
WORKLOAD_UID = "io.meshexp.workload-uid"
TRUST_DOMAIN = "io.meshexp.trust-domain"
IDENTITY = "io.meshexp.identity"
WORKLOAD_PORTS = "io.meshexp.workload-ports"
PORTS = "io.meshexp.ports"
PORT_PROTOCOLS = "io.meshexp.port-protocols"
INBOUND_POLICY = "io.meshexp.inbound-policy"
READINESS = "io.meshexp.readiness"
INBOUND_PORTS_TO_IGNORE = "io.meshexp.inbound-ports-to-ignore"
OUTBOUND_PORTS_TO_IGNORE = "io.meshexp.outbound-ports-to-ignore"
BASE_IMAGE = "io.meshexp.base-image"
# The application image an image made with --from (or `from:`) lays the mesh on.
APPLICATION_IMAGE = "io.meshexp.application-image"
SOURCE_PREFIX = "io.meshexp.source."  # + the component's role, '/' as '.'

IMAGE_LABELS = (
    TOOL_VERSION,
    WORKLOAD,
    WORKLOAD_NAMESPACE,
    LINKERD_VERSION,
    LINKERD_RELEASE,
    PROXY_VERSION,
    PROXY_RELEASE,
    PROXY_STANDIN,
    SPIRE_VERSION,
    SPIRE_TOPOLOGY,
    SPIRE_MULTICALL,
    SPIRE_PLUGINS,
    IPTABLES_MODE,
    PROXY_UID,
    SPIRE_UID,
    WORKLOAD_UID,
    TRUST_DOMAIN,
    IDENTITY,
    WORKLOAD_PORTS,
    PORTS,
    PORT_PROTOCOLS,
    INBOUND_POLICY,
    READINESS,
    INBOUND_PORTS_TO_IGNORE,
    OUTBOUND_PORTS_TO_IGNORE,
    BASE_IMAGE,
    APPLICATION_IMAGE,
)

# The identity style an image from before the IDENTITY label carries.
IDENTITY_BEFORE_THE_LABEL = "walkthrough"


class ContractError(ValueError):
    """A label of the image's contract is missing or does not say what it should."""


PORT_ITEM = re.compile(r"([a-z0-9](?:[-a-z0-9]{0,13}[a-z0-9])?):(\d{1,5})/(TCP|UDP|SCTP)")


@dataclass(frozen=True)
class Port:
    """One port of the workload as the PORTS label records it (`http:8000/TCP`)."""

    name: str
    number: int
    protocol: str = "TCP"

    @property
    def label(self) -> str:
        return f"{self.name}:{self.number}/{self.protocol}"


@dataclass(frozen=True)
class ImageContract:
    """The image's run-time contract, typed: what `render` writes into its io.meshexp
    labels (`to_labels`, in the order the Dockerfile carries them) and what the readers
    take back (`from_labels`: lenient where an image of an older meshexp-build lacks a
    label, with `require` to insist). Provenance labels (the base image used, each
    component's source, the stand-in's mark) are written beside these by render."""

    workload: str = ""
    namespace: str = ""
    tool_version: str = ""
    linkerd_version: str = ""
    linkerd_release: str = ""
    proxy_version: str = ""
    proxy_release: str = ""  # the binary's own word, where it could be asked
    spire_version: str = ""
    spire_topology: str = ""
    iptables_mode: str = ""
    proxy_uid: int | None = None
    trust_domain: str = ""
    identity: str = IDENTITY_BEFORE_THE_LABEL
    spire_multicall: bool = False
    spire_plugins: str = ""
    spire_uid: int | None = None
    workload_uid: int | None = None
    ports: tuple[Port, ...] = ()
    probes: tuple[str, ...] = ()  # PORT=PROTOCOL[:METHOD] each: what `check` asks
    inbound_policy: str = ""
    readiness: str = ""  # the probe and its timings, as JSON
    inbound_ports_to_ignore: tuple[int, ...] = ()
    outbound_ports_to_ignore: tuple[int, ...] = ()
    application_image: str = ""  # made --from this image (as the user named it)
    # read only (render writes these among its provenance labels)
    proxy_standin: str = ""
    base_image: str = ""
    present: frozenset[str] = frozenset()  # the labels the image carries

    def to_labels(self) -> list[tuple[str, str]]:
        """The contract's labels, in the image's order."""
        return [
            (TOOL_VERSION, self.tool_version),
            (WORKLOAD, self.workload),
            (LINKERD_VERSION, self.linkerd_version),
            (LINKERD_RELEASE, self.linkerd_release),
            (PROXY_VERSION, self.proxy_version),
            *([(PROXY_RELEASE, self.proxy_release)] if self.proxy_release else []),
            (SPIRE_VERSION, self.spire_version),
            (SPIRE_TOPOLOGY, self.spire_topology),
            (IPTABLES_MODE, self.iptables_mode),
            (PROXY_UID, _text(self.proxy_uid)),
            (TRUST_DOMAIN, self.trust_domain),
            (IDENTITY, self.identity),
            (SPIRE_MULTICALL, "true" if self.spire_multicall else "false"),
            (SPIRE_PLUGINS, self.spire_plugins),
            (SPIRE_UID, _text(self.spire_uid)),
            (WORKLOAD_UID, _text(self.workload_uid)),
            (WORKLOAD_NAMESPACE, self.namespace),
            (WORKLOAD_PORTS, ",".join(str(port.number) for port in self.ports)),
            # NAME:PORT/PROTOCOL each: what `register` writes into the ExternalWorkload.
            (PORTS, ",".join(port.label for port in self.ports)),
            (PORT_PROTOCOLS, ",".join(self.probes)),
            (INBOUND_POLICY, self.inbound_policy),
            (READINESS, self.readiness),
            (INBOUND_PORTS_TO_IGNORE, ",".join(map(str, self.inbound_ports_to_ignore))),
            (OUTBOUND_PORTS_TO_IGNORE, ",".join(map(str, self.outbound_ports_to_ignore))),
            *([(APPLICATION_IMAGE, self.application_image)] if self.application_image else []),
        ]

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> ImageContract:
        """The contract an image's labels carry; a label that is there but does not say
        what it should is a ContractError naming it (a missing one leaves its default)."""
        get = labels.get
        ports = get(PORTS)
        return cls(
            workload=get(WORKLOAD, ""),
            namespace=get(WORKLOAD_NAMESPACE, ""),
            tool_version=get(TOOL_VERSION, ""),
            linkerd_version=get(LINKERD_VERSION, ""),
            linkerd_release=get(LINKERD_RELEASE, ""),
            proxy_version=get(PROXY_VERSION, ""),
            proxy_release=get(PROXY_RELEASE, ""),
            spire_version=get(SPIRE_VERSION, ""),
            spire_topology=get(SPIRE_TOPOLOGY, ""),
            iptables_mode=get(IPTABLES_MODE, ""),
            proxy_uid=_number(labels, PROXY_UID),
            trust_domain=get(TRUST_DOMAIN, ""),
            identity=get(IDENTITY, IDENTITY_BEFORE_THE_LABEL),
            spire_multicall=get(SPIRE_MULTICALL, "false") == "true",
            spire_plugins=get(SPIRE_PLUGINS, ""),
            spire_uid=_number(labels, SPIRE_UID),
            workload_uid=_number(labels, WORKLOAD_UID),
            ports=_ports(ports) if ports is not None else _bare_ports(labels),
            probes=tuple(item for item in get(PORT_PROTOCOLS, "").split(",") if item),
            inbound_policy=get(INBOUND_POLICY, ""),
            readiness=get(READINESS, ""),
            inbound_ports_to_ignore=_numbers(labels, INBOUND_PORTS_TO_IGNORE),
            outbound_ports_to_ignore=_numbers(labels, OUTBOUND_PORTS_TO_IGNORE),
            proxy_standin=get(PROXY_STANDIN, ""),
            base_image=get(BASE_IMAGE, ""),
            application_image=get(APPLICATION_IMAGE, ""),
            present=frozenset(name for name in labels if name in IMAGE_LABELS),
        )

    def require(self, *names: str) -> None:
        """ContractError naming the first of these labels the image does not carry."""
        for name in names:
            if name not in self.present:
                raise ContractError(
                    f"label {name} is missing: was the image built by meshexp-build? "
                    "Rebuild it with `meshexp-build image`"
                )

    @property
    def port_numbers(self) -> tuple[int, ...]:
        return tuple(port.number for port in self.ports)

    @property
    def proxy(self) -> str:
        """The proxy as the image names it: the stand-in's mark, else its release."""
        return self.proxy_standin or f"proxy {self.proxy_release or self.proxy_version}"


def _text(number: int | None) -> str:
    return "" if number is None else str(number)


def _number(labels: Mapping[str, str], name: str) -> int | None:
    text = labels.get(name)
    if text is None:
        return None
    if not re.fullmatch(r"\d{1,10}", text):
        raise ContractError(f"the image's {name} label has {text[:40]!r}, not a number")
    return int(text)


def _numbers(labels: Mapping[str, str], name: str) -> tuple[int, ...]:
    items = [item for item in labels.get(name, "").split(",") if item]
    bad = [item for item in items if not re.fullmatch(r"\d{1,5}", item)]
    if bad:
        raise ContractError(f"the image's {name} label has {bad[0][:40]!r}, not a port")
    return tuple(int(item) for item in items)


def _ports(text: str) -> tuple[Port, ...]:
    ports = []
    for item in text.split(",") if text else []:
        match = PORT_ITEM.fullmatch(item)
        if match is None or not 0 < int(match[2]) < 65536:
            raise ContractError(
                f"the image's {PORTS} label has {item[:40]!r}, not NAME:PORT/PROTOCOL"
            )
        ports.append(Port(match[1], int(match[2]), match[3]))
    return tuple(ports)


def _bare_ports(labels: Mapping[str, str]) -> tuple[Port, ...]:
    """An image with the port numbers only (WORKLOAD_PORTS): unnamed TCP ports."""
    return tuple(Port("", number) for number in _numbers(labels, WORKLOAD_PORTS))


# Labels on what else the tool makes ------------------------------------------------
RUN = "io.meshexp.run"  # a container `run --apply` started (it registers it itself)
LAB = "io.meshexp.lab"  # the lab's containers and network (`.role` on each part)
BUILD_STAGE = "io.meshexp.build-stage"  # kind node image build stages
CONTENT = "io.meshexp.content"  # cluster images, by the hash of what went in
BASE_RECIPE = "io.meshexp.base-recipe"  # the offline base, by its recipe's hash


# Where an image of ours keeps its parts (the Dockerfile puts them there, the templates
# run them, `check`, the keeper and the lab call them there): every part of the mesh
# under one prefix, so that it can be laid on any application's image; the catalog's
# own programs where catalog entries name them ------------------------------------------
MESH = "/opt/meshexp"
BIN = f"{MESH}/bin"
BASH = f"{BIN}/bash"  # the scripts' interpreter (a link to Debian's on our base)
BOOTSTRAP = f"{BIN}/bootstrap"
RUN_PROXY = f"{BIN}/run-proxy"
PROBE = f"{BIN}/meshexp-probe"  # the readiness probe: certcheck, by that name
CERTCHECK = f"{BIN}/meshexp-certcheck"
SPIRE_SERVER = f"{BIN}/spire-server"
SPIRE_AGENT = f"{BIN}/spire-agent"
PROXY = f"{BIN}/linkerd2-proxy"
# An image made FROM an application's: the mesh's own loader and libraries, and
# iptables' extensions (builder.build.from_image).
LIB = f"{MESH}/lib"
LOADER = f"{LIB}/ld.so"  # glibc's, by a name short enough to be written in place
XTABLES = f"{LIB}/xtables"
SPIRE_CONFIG = f"{MESH}/etc/spire"
MESH_WORKLOAD = f"{MESH}/workload"  # the workload's layer: a change rebuilds only it
LAUNCH = f"{MESH_WORKLOAD}/launch"
READINESS_SPEC = f"{MESH_WORKLOAD}/readiness.json"
WORKLOAD_DIR = "/opt/workload"  # the catalog's programs and files
WORKLOAD_BIN = f"{WORKLOAD_DIR}/bin"  # + the binary's name
# What the tool runs inside an image of ours finds the mesh's programs first (an
# application's image may have no shell or tools of its own): `docker exec` is given it.
EXEC_PATH = f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# ...and, in an image made FROM an application's, the mesh's libraries (no such folder
# in the others): `docker exec`'s environment.
EXEC_ENVIRONMENT = {
    "PATH": EXEC_PATH,
    "LD_LIBRARY_PATH": LIB,
    # iptables: the mesh's extensions, or the base's (Debian's folders, either platform).
    "XTABLES_LIBDIR": ":".join(
        (XTABLES, "/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib/aarch64-linux-gnu/xtables")
    ),
}
AGENT_SOCKET = "/run/spire/agent/public/api.sock"
SERVER_SOCKET = "/run/spire/server/private/api.sock"


# The bootstrap's log lines that the tool waits for -----------------------------------
PROXY_READY_LINE = "bootstrap: proxy ready"
WORKLOAD_STARTED_LINE = "bootstrap: workload started"
WORKLOAD_READY_LINE = "bootstrap: workload ready ("
IPV6_OFF_LINE = "bootstrap: IPv6: off"
LOG_LINES = (PROXY_READY_LINE, WORKLOAD_STARTED_LINE, WORKLOAD_READY_LINE, IPV6_OFF_LINE)

# The proxy's own line once its identity is certified (linkerd2-proxy's, not ours).
CERTIFIED_LINE = "Certified identity"

# "Proxy ready", decided one way, by the bootstrap inside the container (its
# proxy_ready, rendered from these) and by builder.core.net.proxy_readiness outside:
# the admin port's /ready answers 200; or it refuses the caller (a plaintext one, by a
# default inbound policy that waits for a policy controller) and the proxy has logged
# CERTIFIED_LINE.
PROXY_READY_STATUS = 200
PROXY_REFUSED_STATUSES = (403, 404)


def proxy_ready(status: int | None, certified: Callable[[], bool]) -> bool:
    """Whether a proxy whose /ready answered `status` (None: no answer) is ready;
    `certified` is asked only where the answer was a refusal."""
    if status == PROXY_READY_STATUS:
        return True
    return status in PROXY_REFUSED_STATUSES and certified()
