"""The names a workload's SVID carries, and so the names a policy can use.

The proxy's certificate (the SVID from SPIRE) has two names: the SPIFFE ID
(the URI SAN, which the ExternalWorkload's `meshTLS.identity` names) and a DNS
name (the ExternalWorkload's `meshTLS.serverName`). A Linkerd server-side
proxy identifies a client by the DNS name, so a MeshTLSAuthentication must
list that one (tried with the real proxy and policy controller; see
`../shared/test-equipment/linkerd-control-plane/README.md`).

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
        """What a MeshTLSAuthentication lists: the DNS name (what the server-side
        proxy matches) and the SPIFFE ID.
        """
        return [self.dns_name, self.spiffe_id]


def workload_identity(style: str, trust_domain: str, namespace: str, name: str) -> WorkloadIdentity:
    if style == "walkthrough":
        return WorkloadIdentity(f"spiffe://{trust_domain}/{name}", f"{name}.cluster.local")
    return WorkloadIdentity(
        f"spiffe://{trust_domain}/ns/{namespace}/externalworkload/{name}",
        f"{name}.{namespace}.externalworkload.cluster.local",
    )
