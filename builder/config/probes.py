"""The workload's readiness probe: as an entry declares it (ProbeEntry, with Kubernetes'
semantics and defaults), and as decided with the entry's ports (Readiness: what
meshexp-probe runs in the container, Docker's HEALTHCHECK, the keeper's Ready).
"""

# No `from __future__ import annotations`: pydantic reads these annotations.
from dataclasses import dataclass
from typing import Annotated, Self

from pydantic import (
    BeforeValidator,
    Field,
    WithJsonSchema,
    model_validator,
)

from builder.config.types import (
    Entry,
    FreeText,
    GrpcMethod,
    HttpPath,
    HttpStatus,
    Pattern,
    PositiveSeconds,
    Range,
    Seconds,
    SuccessThreshold,
    Threshold,
    as_text,
    refuse,
)
from builder.config.validation import PORT_NAME, shown

SCHEMA_ID = "https://meshexp.dev/schema/{kind}.json"


def _port_ref(value: object) -> object:
    """A port of the entry by its name or its number, each held to its own rule."""
    if isinstance(value, int) and not isinstance(value, bool):
        return PORT_RANGE.check(value)
    if isinstance(value, str):
        return PORT_NAME_RULE.check(as_text(value))
    refuse(f"expected a port's name or number, got {shown(value)}")


PORT_RANGE = Range(1, 65535)
PORT_NAME_RULE = Pattern(PORT_NAME, "a port's name, or a number from 1 to 65535")
PortRef = Annotated[
    int | str,
    BeforeValidator(_port_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": PORT_NAME.pattern},
            ]
        }
    ),
]


class HttpProbe(Entry):
    """GET a path on the workload's own port; passes on 200-399, or the status given."""

    path: HttpPath = Field("/", description="the path (and query) to GET")
    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    status: HttpStatus | None = Field(None, description="the one status that passes")


class GrpcProbe(Entry):
    """One gRPC call with an empty message: the standard health service must say SERVING,
    or the named method answer OK."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")
    method: GrpcMethod | None = Field(
        None, description="the method to call (default: /grpc.health.v1.Health/Check)"
    )


class TcpProbe(Entry):
    """A connection to the workload's port is accepted."""

    port: PortRef | None = Field(None, description="a port's name or number (default: the first)")


class ExecProbe(Entry):
    """A command in the container, run as the workload's UID, exits 0."""

    command: tuple[FreeText, ...] = Field(description="the command and its arguments (no shell)")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.command:
            refuse("command: give the program to run and its arguments")
        return self


PROBE_KINDS = ("http", "grpc", "tcp", "exec")
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class ProbeEntry(Entry):
    """The workload's readiness probe as an entry declares it, with Kubernetes' semantics
    and defaults (`Workload.probe` is what it decides, with the entry's ports)."""

    http: HttpProbe | None = None
    grpc: GrpcProbe | None = None
    tcp: TcpProbe | None = None
    exec: ExecProbe | None = None
    initial_delay: Seconds = Field(0, description="seconds before failures count")
    period: PositiveSeconds = Field(10, description="seconds between probes")
    timeout: PositiveSeconds = Field(1, description="seconds one probe may take")
    success_threshold: SuccessThreshold = Field(
        1, description="passes in a row that make it ready (at most 5: Docker keeps 5)"
    )
    failure_threshold: Threshold = Field(3, description="failures in a row that make it unready")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [kind for kind in PROBE_KINDS if getattr(self, kind) is not None]
        if len(given) > 1:
            refuse(f"give one probe kind of {', '.join(PROBE_KINDS)}, not {given}")
        return self


@dataclass(frozen=True)
class Readiness:
    """The probe decided: the declared one with its port's number, or the default for
    the first port. Run inside the container by meshexp-probe (go/internal/probe):
    Docker's HEALTHCHECK, the bootstrap's "workload ready", the keeper's Ready. `kind`
    is http, grpc, tcp or exec."""

    kind: str
    port: int = 0
    path: str = ""
    status: int | None = None
    # The default probe of an undeclared HTTP port: any answer below this passes.
    status_below: int | None = None
    method: str | None = None
    command: tuple[str, ...] = ()
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    def spec(self, uid: int) -> dict[str, object]:
        """What meshexp-probe reads (the image's /opt/meshexp/workload/readiness.json)."""
        spec: dict[str, object] = {"kind": self.kind, "timeout": self.timeout, "uid": uid}
        if self.kind == "exec":
            return spec | {"command": list(self.command)}
        spec["port"] = self.port
        if self.kind == "http":
            spec["path"] = self.path
            if self.status is not None:
                spec["status"] = self.status
            if self.status_below is not None:
                spec["status_below"] = self.status_below
        if self.kind == "grpc" and self.method:
            spec["method"] = self.method
        return spec

    def describe(self) -> str:
        if self.kind == "http":
            want = str(self.status) if self.status is not None else "200-399"
            if self.status_below is not None:
                want = f"any status below {self.status_below}"
            return f"http GET {self.path} on port {self.port} ({want})"
        if self.kind == "grpc":
            return f"grpc {self.method or HEALTH_CHECK} on port {self.port}"
        if self.kind == "tcp":
            return f"tcp connect to port {self.port}"
        return "exec " + " ".join(self.command)

    @property
    def timings(self) -> dict[str, int]:
        return {
            "initial_delay": self.initial_delay,
            "period": self.period,
            "timeout": self.timeout,
            "success_threshold": self.success_threshold,
            "failure_threshold": self.failure_threshold,
        }
