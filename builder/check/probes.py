"""Probes that speak each port's protocol, from a client container with only bash.

`check` proves that a workload answered through its proxy, not merely that
some bytes came back: an HTTP/1 status line, or a gRPC status from a gRPC
server, neither marked by the proxy's `l5d-proxy-error` header (the proxy
adds it to every answer it makes up itself). An opaque TCP port can only
prove that a connection was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.check import grpcwire
from builder.core.net import host_port

# The standard gRPC health check: any gRPC status from it (UNIMPLEMENTED too)
# proves that a gRPC server answered.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
PROXY_ERROR = "l5d-proxy-error"
PERMISSION_DENIED = 7
# Servers keep an HTTP/2 connection open after answering, so the gRPC probe
# reads until the line has been idle this long.
IDLE_SECONDS = 5


@dataclass(frozen=True)
class ProbeResult:
    """What a probe got: whether the workload itself answered, or how it was refused."""

    answered: bool
    summary: str
    refused: str | None = None  # "closed the connection", "answered 403", ...
    signature: str = ""  # "HTTP 200", "grpc-status 0": compared with the local answer


@dataclass(frozen=True)
class PortProbe:
    port: int
    protocol: str = "http"  # http | grpc | opaque
    grpc_method: str | None = None

    @classmethod
    def from_label(cls, label: str | None, ports: list[int]) -> list[PortProbe]:
        """Read `io.meshexp.port-protocols` (`8000=grpc:/S/M,9090=http`); images built
        before it existed have HTTP on every port.
        """
        if not label:
            return [cls(port) for port in ports]
        probes = []
        for item in label.split(","):
            port, _, rest = item.partition("=")
            protocol, _, method = rest.partition(":")
            probes.append(cls(int(port), protocol or "http", method or None))
        return probes

    def describe(self) -> str:
        if self.protocol == "grpc":
            return f"port {self.port} (gRPC {self.grpc_method or HEALTH_CHECK})"
        return f"port {self.port} ({'HTTP/1' if self.protocol == 'http' else 'opaque TCP'})"

    def script(self, host: str = "127.0.0.1") -> str:
        """A bash line that sends the probe to HOST:PORT and prints what came back."""
        connect = f"exec 3<>/dev/tcp/{host}/{self.port}"
        if self.protocol == "opaque":
            return f"{connect} && echo connected"
        if self.protocol == "http":
            return (
                f"{connect} && "
                'printf "GET / HTTP/1.0\\r\\nHost: check\\r\\n\\r\\n" >&3 && timeout 10 cat <&3'
            )
        request = grpcwire.request_bytes(
            self.grpc_method or HEALTH_CHECK,
            b"",
            host_port(host, self.port),
            {"user-agent": "check"},
        )
        escaped = "".join(f"\\x{byte:02x}" for byte in request)
        # Byte by byte as hex (bash variables cannot hold NUL), until idle.
        return (
            f"export LC_ALL=C; {connect} && printf %b '{escaped}' >&3 && "
            f"while IFS= read -r -d '' -n 1 -t {IDLE_SECONDS} c <&3; do "
            'if [ -z "$c" ]; then printf 00; else printf %02x "\'$c"; fi; done; echo'
        )

    def read(self, output: str) -> ProbeResult:
        """Judge what the script printed."""
        if self.protocol == "opaque":
            if output.strip() == "connected":
                return ProbeResult(True, "connection accepted (opaque TCP: no answer to read)")
            return ProbeResult(False, f"no connection: {output.strip()[:200]!r}", "refused")
        if self.protocol == "http":
            return read_http(output)
        try:
            raw = bytes.fromhex(output.strip())
        except ValueError:
            return ProbeResult(False, f"unreadable probe output {output[:200]!r}")
        return read_grpc(grpcwire.parse_answer(raw))


def read_http(output: str) -> ProbeResult:
    if not output.startswith("HTTP/"):
        return ProbeResult(False, f"no HTTP answer ({output[:80]!r})", "closed the connection")
    head = output.split("\r\n\r\n", 1)[0].split("\r\n")
    status_line = head[0]
    code = "".join(status_line.split(" ")[1:2])
    # The proxy refuses a plaintext client with a bare 403 (it marks its own
    # answers with l5d-proxy-error for meshed clients only).
    refused = "answered 403" if code == "403" else None
    proxy_error = [line for line in head[1:] if line.lower().startswith(PROXY_ERROR + ":")]
    if proxy_error:
        summary = f"the proxy answered {status_line!r} ({proxy_error[0].strip()})"
        return ProbeResult(False, summary, refused, f"HTTP {code}")
    return ProbeResult(True, f"got {status_line!r}", refused, f"HTTP {code}")


def read_grpc(answer: grpcwire.Answer) -> ProbeResult:
    if answer.kind == "none":
        return ProbeResult(False, "no answer", "closed the connection")
    if answer.kind == "http1":
        return ProbeResult(
            False, f"{answer.summary()}: the port does not speak gRPC (app_protocol in the catalog)"
        )
    denied = answer.grpc_status == PERMISSION_DENIED or answer.http_status == "403"
    refused = f"answered grpc-status {answer.grpc_status}" if denied else None
    signature = f"grpc-status {answer.grpc_status}"
    if PROXY_ERROR in answer.headers:
        summary = f"the proxy answered {answer.summary()} ({answer.headers[PROXY_ERROR]})"
        return ProbeResult(False, summary, refused, signature)
    if answer.grpc_status is None:
        return ProbeResult(False, f"{answer.summary()}: HTTP/2 but not a gRPC answer", refused)
    strings = []
    for message in answer.messages:
        try:
            fields = grpcwire.decode_message(message)
        except ValueError:
            continue
        strings += [
            v.decode(errors="replace") for vs in fields.values() for v in vs if isinstance(v, bytes)
        ]
    shown = f", answer {strings}" if strings else ""
    return ProbeResult(True, f"got {answer.summary()}{shown}", refused, signature)
