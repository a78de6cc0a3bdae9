"""Port probes: what check sends, and how it reads real answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import hpack
import pytest
from hyperframe.frame import DataFrame, Frame, HeadersFrame, SettingsFrame

from builder.check import grpcwire
from builder.check.probes import PortProbe

DATA = Path(__file__).parent / "data"
CENTER, HEALTH = (DATA / "upstream-color-answers.hex").read_text().split()


def test_label_gives_each_port_its_protocol() -> None:
    probes = PortProbe.from_label("8000=grpc:/ColorService/Center,9090=http", [8000, 9090])
    assert probes == [PortProbe(8000, "grpc", "/ColorService/Center"), PortProbe(9090, "http")]
    # Images from before the label: HTTP on every port.
    assert PortProbe.from_label(None, [8080]) == [PortProbe(8080, "http")]


def test_grpc_answers_from_upstream_color_are_read() -> None:
    center = PortProbe(8000, "grpc", "/ColorService/Center").read(CENTER)
    assert center.answered
    assert center.signature == "grpc-status 0"
    assert "#66CCEE" in center.summary
    health = PortProbe(8000, "grpc").read(HEALTH)
    assert health.answered  # UNIMPLEMENTED still proves a gRPC server answered
    assert health.signature == "grpc-status 12"


def test_proxy_made_and_refused_answers_are_not_the_workloads() -> None:
    http = PortProbe(8000)
    forbidden = http.read("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
    assert forbidden.refused == "answered 403"
    marked = http.read("HTTP/1.1 502 Bad Gateway\r\nl5d-proxy-error: connection refused\r\n\r\n")
    assert not marked.answered
    assert "l5d-proxy-error: connection refused" in marked.summary
    closed = http.read("")
    assert (closed.answered, closed.refused) == (False, "closed the connection")
    assert PortProbe(8000, "grpc").read("").refused == "closed the connection"
    # An HTTP/1 answer on a port declared gRPC names the catalog field to fix.
    wrong = PortProbe(8000, "grpc").read(b"HTTP/1.1 200 OK\r\n\r\n{}".hex())
    assert not wrong.answered
    assert "app_protocol" in wrong.summary


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113, section 3.4


def http2_frames(raw: bytes) -> list[Frame]:
    """The frames in `raw`, read by hyperframe (h2's own frame layer)."""
    frames, at = [], 0
    while at < len(raw):
        frame, length = Frame.parse_frame_header(memoryview(raw[at : at + 9]))
        frame.parse_body(memoryview(raw[at + 9 : at + 9 + length]))
        frames.append(frame)
        at += 9 + length
    return frames


def test_grpc_request_is_valid_http2_for_a_real_decoder() -> None:
    raw = grpcwire.request_bytes("/ColorService/Edge", b"\x08\x01", "h:1", {"x-faces-user": "a"})
    assert raw.startswith(PREFACE)
    frames = http2_frames(raw[len(PREFACE) :])
    assert [type(frame) for frame in frames] == [SettingsFrame, HeadersFrame, DataFrame]
    headers = dict(hpack.Decoder().decode(frames[1].data))
    assert headers[":path"] == "/ColorService/Edge"
    assert headers["x-faces-user"] == "a"
    assert frames[2].data == b"\x00\x00\x00\x00\x02\x08\x01"  # uncompressed, length 2
    assert "END_STREAM" in frames[2].flags


@pytest.mark.parametrize("value", [0, 7, -1, 300, 2**31 - 1])
def test_protobuf_varints_round_trip(value: int) -> None:
    encoded = grpcwire.encode_message({1: value, 2: "x"})
    decoded = grpcwire.decode_message(encoded)
    assert decoded.get(2) == [b"x"]
    if value:
        assert decoded[1] == [value & (2**64 - 1)]
    else:
        assert 1 not in decoded  # proto3 leaves zero out


def test_grpc_script_sends_the_request_bytes_through_bash() -> None:
    """The printf %b escapes decode to exactly request_bytes (bash's own printf)."""
    probe = PortProbe(8000, "grpc", "/ColorService/Center")
    script = probe.script("127.0.0.1")
    escaped = script.split("printf %b '", 1)[1].split("'", 1)[0]
    out = subprocess.run(
        ["bash", "-c", f"printf %b '{escaped}'"], capture_output=True, check=True
    ).stdout
    expected = grpcwire.request_bytes(
        "/ColorService/Center", b"", "127.0.0.1:8000", {"user-agent": "check"}
    )
    assert out == expected
