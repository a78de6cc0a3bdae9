"""The registration template (`register --group FILE` or its flags): what every
container that `meshexp-build register` finds gets, like an ExternalGroup (Buoyant
Enterprise for Linkerd) or a WorkloadGroup (Istio).

```yaml
namespace: faces          # only containers whose identity names this namespace
workloads: [smiley]       # only these workloads (WORKLOAD_NAME); default: every one
network: faces            # the address on this Docker network; default: the first
labels: {team: edge}      # added to each ExternalWorkload and Service
service: {port: 80}       # the Service's first port; `enabled: false` for none
```
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from builder.config.types import (
    AsText,
    DnsLabel,
    Entry,
    Flag,
    FreeText,
    Pattern,
    PortNumber,
    parse,
    refuse,
)
from builder.config.validation import KUBE_LABEL_KEY, KUBE_LABEL_VALUE, shown
from builder.config.yamlfile import read_yaml_file
from builder.core.errors import SettingsError

# Labels the registration itself sets: a template cannot give them.
RESERVED_LABELS = ("app", "app.kubernetes.io/managed-by", "meshexp.io/registrar")

KubeLabelKey = Annotated[
    str,
    Pattern(
        KUBE_LABEL_KEY, "a Kubernetes label key: [prefix/]name, letters, digits, '-', '_', '.'"
    ),
    AsText,
]
KubeLabelValue = Annotated[
    str,
    Pattern(
        KUBE_LABEL_VALUE, "a Kubernetes label value: at most 63 letters, digits, '-', '_', '.'"
    ),
    AsText,
]


class Service(Entry):
    """The Service made beside each ExternalWorkload."""

    enabled: Flag = True
    port: PortNumber | None = Field(None, description="its first port (default: the workload's)")


class Group(Entry):
    """The template, validated."""

    namespace: DnsLabel | None = None
    workloads: tuple[DnsLabel, ...] = ()
    network: Annotated[FreeText, StringConstraints(max_length=200)] | None = None
    labels: dict[KubeLabelKey, KubeLabelValue] = Field(default_factory=dict)
    service: Service = Service()

    @model_validator(mode="after")
    def _not_reserved(self) -> Self:
        for key in self.labels:
            if key in RESERVED_LABELS:
                refuse(
                    f"labels: label {shown(key)} is set by the registration itself; "
                    "choose another key"
                )
        return self


def load_group(path: Path) -> Group:
    """The group file at `path`, checked: one line naming the field on any problem."""
    data = read_yaml_file(path, "group file", SettingsError) or {}
    return parse(Group, data, f"{path}:", SettingsError)


def group_with_flags(
    base: Group,
    *,
    namespace: str | None = None,
    workloads: tuple[str, ...] = (),
    network: str | None = None,
    labels: dict[str, str] | None = None,
    service: bool = True,
    service_port: int | None = None,
) -> Group:
    """The group file's template with the command's flags over it, checked as the file
    is (a flag's value is held to the same field's rules)."""
    data: dict[str, object] = {
        "namespace": namespace or base.namespace,
        "workloads": list(workloads or base.workloads) or None,
        "network": network or base.network,
        "labels": base.labels | (labels or {}),
        "service": {
            "enabled": base.service.enabled and service,
            "port": service_port or base.service.port,
        },
    }
    return parse(Group, {k: v for k, v in data.items() if v is not None}, "flags:", SettingsError)
