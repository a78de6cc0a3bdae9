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
  SPIRE_PLUGINS, BASE_IMAGE, SOURCE_PREFIX (one per component), TOOL_VERSION.

Labels on other things the tool makes (the lab's containers, `run`'s, cached images)
are named here too, so that `io.meshexp.` is written in this module only.
"""

from __future__ import annotations

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
)

# The identity style an image from before the IDENTITY label carries.
IDENTITY_BEFORE_THE_LABEL = "walkthrough"

# Labels on what else the tool makes ------------------------------------------------
RUN = "io.meshexp.run"  # a container `run --apply` started (it registers it itself)
LAB = "io.meshexp.lab"  # the lab's containers and network (`.role` on each part)
BUILD_STAGE = "io.meshexp.build-stage"  # kind node image build stages
CONTENT = "io.meshexp.content"  # cluster images, by the hash of what went in
BASE_RECIPE = "io.meshexp.base-recipe"  # the offline base, by its recipe's hash


def label(key: str) -> str:
    """The full name of one of our labels from its short key (`proxy-uid`)."""
    return f"{PREFIX}{key}"


def short(name: str) -> str:
    """The short key of one of our labels (`io.meshexp.proxy-uid` -> `proxy-uid`)."""
    return name.removeprefix(PREFIX)


# The bootstrap's log lines that the tool waits for -----------------------------------
PROXY_READY_LINE = "bootstrap: proxy ready"
WORKLOAD_STARTED_LINE = "bootstrap: workload started"
WORKLOAD_READY_LINE = "bootstrap: workload ready ("
IPV6_OFF_LINE = "bootstrap: IPv6: off"
LOG_LINES = (PROXY_READY_LINE, WORKLOAD_STARTED_LINE, WORKLOAD_READY_LINE, IPV6_OFF_LINE)

# The proxy's own line once its identity is certified (linkerd2-proxy's, not ours).
CERTIFIED_LINE = "Certified identity"
