"""A real Linkerd control plane on a Docker network, with no Kubernetes nodes.

`meshexp-build lab up` starts, each as a container on one network with a
fixed address:
- etcd and kube-apiserver (the project's own build, builder.cluster.apiserver);
- Linkerd's objects from `linkerd install` (the user's linkerd CLI), with the
  trust anchor and issuer of `meshexp-build certs`, less what needs a kubelet
  or a webhook (the webhook configurations and the heartbeat CronJob);
- the identity "pod" (the identity controller) and the destination "pod"
  (destination and policy controllers), each behind a real linkerd2-proxy
  started through proxy-identity, with an inbound traffic capture, the Pod
  objects the controllers look up (marked Running, since no kubelet does),
  their projected tokens and files, and EndpointSlices for Linkerd's Services;
- a DNS server (dnsmasq) that answers Linkerd's Service names with the pods'
  addresses, and workload Services' names with their ClusterIPs.

Everything carries the label io.meshexp.lab=<name>; `lab down` removes it all,
also after a failed `up`. What was learnt doing this by hand, step by step, is
in ../shared/test-equipment/linkerd-control-plane/README.md.

The package: layout (the lab, its addresses and errors), objects (Linkerd's, and
EndpointSlices), pods (the control-plane pods), dns, up (up, status, down, run into
it), programs (Linkerd's programs from its images) and check (`check --lab`). It may
import every package of builder but the CLI.
"""

from __future__ import annotations

from builder.lab.layout import LABEL, RUNTIME_IMAGE, Lab, LabError, LabNotUp, LabSources
from builder.lab.programs import sources_from_images
from builder.lab.up import (
    ComponentState,
    lab_certs,
    lab_down,
    lab_status,
    lab_up,
    register_in_lab,
    run_in_lab,
    running_lab,
    service_address,
)

__all__ = [
    "LABEL",
    "RUNTIME_IMAGE",
    "ComponentState",
    "Lab",
    "LabError",
    "LabNotUp",
    "LabSources",
    "lab_certs",
    "lab_down",
    "lab_status",
    "lab_up",
    "register_in_lab",
    "run_in_lab",
    "running_lab",
    "service_address",
    "sources_from_images",
]
