"""The cluster's side of the registry mirrors: containerd's `hosts.toml` for each upstream
registry a mirror covers, so that every image the cluster's nodes pull (Linkerd's control
plane, the Faces chart's images, whatever a user's manifests name) goes to the mirror as
the tool's own pulls do. Pure: the files' text; builder.cluster.kind puts them on the node.

containerd (1.5 on, `config_path`) reads `/etc/containerd/certs.d/<upstream>/hosts.toml`
at each pull, so the files can be written once the node is up, when the address the node
reaches a mirror on this machine at (its network's gateway) is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from builder.config.mirrors import is_local, registry_api
from builder.core.errors import SettingsError

# Where kind's containerd looks for them, and the patch that says so (kindest/node's own
# config says it too; the node image built here takes kind's config, patched alike).
HOSTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_PATCH = (
    f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{HOSTS_DIR}"\n'
)


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these ASCII values)."""
    return json.dumps(text, ensure_ascii=True)


def mirror_endpoint(mirror: str, gateway: str) -> str:
    """The URL containerd pulls through for MIRROR (HOST[:PORT][/PATH]). A mirror on this
    machine (loopback, plain HTTP as the engine speaks to it) is reached by the nodes at
    their network's gateway, so it must listen there too."""
    host, _, path = mirror.partition("/")
    scheme = "https"
    if is_local(host):
        scheme = "http"
        name, _, port = host.rpartition(":")
        host = gateway + (f":{port}" if name else "")
    return f"{scheme}://{host}" + (f"/v2/{path}" if path else "")


def check_node_mirrors(mirrors: Mapping[str, str]) -> None:
    """The nodes mirror whole registries: an upstream with a path (ghcr.io/buoyantio) is
    refused with the way to say it for the cluster."""
    for upstream, mirror in sorted(mirrors.items()):
        if "/" in upstream:
            raise SettingsError(
                f"mirror {upstream}={mirror}: a cluster's nodes mirror whole registries; give "
                f"{upstream.split('/')[0]}=MIRROR for the walk-through's cluster"
            )


def containerd_hosts(mirrors: Mapping[str, str], gateway: str) -> dict[str, str]:
    """Each upstream registry's `hosts.toml` text, keyed by the folder name containerd
    looks it up under (check_node_mirrors says which mirrors the nodes can take)."""
    check_node_mirrors(mirrors)
    files = {}
    for upstream, mirror in sorted(mirrors.items()):
        endpoint = mirror_endpoint(mirror, gateway)
        server = "https://" + registry_api(upstream)
        lines = [
            f"server = {_toml(server)}",
            "",
            f"[host.{_toml(endpoint)}]",
            '  capabilities = ["pull", "resolve"]',
        ]
        if "/" in mirror:
            # containerd appends /v2/<name>/... unless the endpoint's path is taken as it is.
            lines.append("  override_path = true")
        files[upstream] = "\n".join(lines) + "\n"
    return files
