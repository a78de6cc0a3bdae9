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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from builder.config.types import AsText, DnsLabel, Flag, FreeText, Hint, PortNumber, parse
from builder.config.validation import KUBE_LABEL_KEY, KUBE_LABEL_VALUE, shown
from builder.config.yamlfile import read_yaml_file
from builder.core.errors import SettingsError

# Labels the registration itself sets: a template cannot give them.
RESERVED_LABELS = ("app", "app.kubernetes.io/managed-by", "meshexp.io/registrar")

KubeLabelKey = Annotated[
    str,
    StringConstraints(pattern=KUBE_LABEL_KEY.pattern),
    Hint("a Kubernetes label key: [prefix/]name, letters, digits, '-', '_', '.'"),
    AsText,
]
KubeLabelValue = Annotated[
    str,
    StringConstraints(pattern=KUBE_LABEL_VALUE.pattern),
    Hint("a Kubernetes label value: at most 63 letters, digits, '-', '_', '.'"),
    AsText,
]


class ServiceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: Flag = True
    port: PortNumber | None = None


class GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: DnsLabel | None = None
    workloads: list[DnsLabel] | None = None
    network: FreeText | None = Field(None, max_length=200)
    labels: dict[KubeLabelKey, KubeLabelValue] | None = None
    service: ServiceEntry | None = None


@dataclass(frozen=True)
class Group:
    """The template, validated."""

    namespace: str | None = None
    workloads: tuple[str, ...] = ()
    network: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    service: bool = True
    service_port: int | None = None

    def __post_init__(self) -> None:
        for key, value in self.labels:
            if key in RESERVED_LABELS:
                raise SettingsError(
                    f"label {shown(key)} is set by the registration itself; choose another key"
                )
            if not KUBE_LABEL_KEY.fullmatch(key) or not KUBE_LABEL_VALUE.fullmatch(value):
                raise SettingsError(
                    f"label {key}={shown(value)} is not a Kubernetes label "
                    "([prefix/]name=value, at most 63 letters, digits, '-', '_', '.' each)"
                )


def group_from(entry: GroupEntry) -> Group:
    service = entry.service or ServiceEntry()
    return Group(
        namespace=entry.namespace,
        workloads=tuple(entry.workloads or ()),
        network=entry.network,
        labels=tuple(sorted((entry.labels or {}).items())),
        service=service.enabled,
        service_port=service.port,
    )


def load_group(path: Path) -> Group:
    """The group file at `path`, checked: one line naming the field on any problem."""
    data = read_yaml_file(path, "group file", SettingsError) or {}
    entry = parse(GroupEntry, data, f"{path}:", SettingsError)
    try:
        return group_from(entry)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None


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
        "labels": dict(base.labels) | (labels or {}),
        "service": {"enabled": base.service and service, "port": service_port or base.service_port},
    }
    entry = parse(
        GroupEntry, {k: v for k, v in data.items() if v is not None}, "flags:", SettingsError
    )
    return group_from(entry)
