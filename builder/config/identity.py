"""The names a workload's SVID carries, and so the names a policy can use.

A workload has two names. Its SVID (the proxy's certificate, from SPIRE) carries
one: the SPIFFE ID (the URI SAN, which the ExternalWorkload's `meshTLS.identity`
names), as the walk-through's SVIDs do. The other, a DNS-like name, is the
ExternalWorkload's `meshTLS.serverName`: the TLS server name (SNI) peers ask
for, which the workload's proxy takes from LINKERD2_PROXY_IDENTITY_SERVER_NAME,
not from its certificate. linkerd2-proxy takes a client's FIRST certificate
name as its identity in policy (`l5d-client-id`, `client_id`), and verifies a
server by any of its names; with the SPIFFE ID alone, policies name an external
workload by its SPIFFE ID (seen with the real proxy and control plane in the
lab: tests/integration/test_mesh_lab.py).

Two styles:
- `namespaced` (the default): both names carry the namespace, so that `face`
  of one namespace is never `face` of another:
  `spiffe://<td>/ns/<ns>/externalworkload/<name>` and
  `<name>.<ns>.externalworkload.cluster.local`.
- `walkthrough`: the names of Linkerd's mesh-expansion walk-through, for
  drop-in use beside its images: `spiffe://<td>/<name>` and
  `<name>.cluster.local`. Two workloads of one name in different namespaces
  then share an identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

IdentityStyle = Literal["namespaced", "walkthrough"]
IDENTITY_STYLES: tuple[str, ...] = get_args(IdentityStyle)


@dataclass(frozen=True)
class WorkloadIdentity:
    spiffe_id: str
    dns_name: str

    @property
    def policy_names(self) -> list[str]:
        """What a MeshTLSAuthentication lists for this workload as a client: its SPIFFE
        ID, the one name in its certificate and so its identity to the server's proxy."""
        return [self.spiffe_id]


def workload_identity(style: str, trust_domain: str, namespace: str, name: str) -> WorkloadIdentity:
    if style == "walkthrough":
        return WorkloadIdentity(f"spiffe://{trust_domain}/{name}", f"{name}.cluster.local")
    return WorkloadIdentity(
        f"spiffe://{trust_domain}/ns/{namespace}/externalworkload/{name}",
        f"{name}.{namespace}.externalworkload.cluster.local",
    )
