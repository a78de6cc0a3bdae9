"""Just enough HTTP/2 and protobuf to make one unary gRPC call and read its answer.

The checks speak gRPC to a workload's gRPC port from inside a client
container, where only bash is at hand: `request_bytes` builds the exact bytes
a client sends, and `parse_answer` reads whatever came back (frames, an
HTTP/1 refusal, or nothing). `call` does the same over a socket from here.
Header blocks are HPACK, decoded with the `hpack` library; the rest is a few
fixed frame layouts (RFC 9113) and protobuf's varint and length-delimited
fields, which is all the Faces color contract uses.
"""

from __future__ import annotations

import socket
import struct
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, CONTINUATION = 0, 1, 3, 4, 9
END_STREAM, END_HEADERS = 0x1, 0x4
STREAM = 1


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 are sign-extended to 64 bits
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_message(fields: dict[int, int | str]) -> bytes:
    """Protobuf: ints as varints, strings length-delimited; zero values omitted."""
    out = b""
    for number, value in sorted(fields.items()):
        if isinstance(value, int) and value:
            out += varint(number << 3) + varint(value)
        elif isinstance(value, str) and value:
            raw = value.encode()
            out += varint(number << 3 | 2) + varint(len(raw)) + raw
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def decode_message(data: bytes) -> dict[int, list[int | bytes]]:
    """Protobuf fields by number: varints as ints, length-delimited as bytes."""
    fields: dict[int, list[int | bytes]] = {}
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
            fields.setdefault(number, []).append(value)
        elif wire == 2:
            size, at = _read_varint(data, at)
            fields.setdefault(number, []).append(data[at : at + size])
            at += size
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported here")
    return fields


def request_bytes(
    method: str, message: bytes, authority: str, metadata: dict[str, str] | None = None
) -> bytes:
    """The whole client side of one unary call (servers keep the connection open
    afterwards, so a reader stops at the end of stream 1, see `stream_ended`).
    """
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *sorted((metadata or {}).items()),
    ]
    block = hpack.Encoder().encode(headers)
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return (
        PREFACE
        + frame(SETTINGS, 0, 0, b"")
        + frame(HEADERS, END_HEADERS, STREAM, block)
        + frame(DATA, END_STREAM, STREAM, body)
    )


@dataclass
class Answer:
    """What came back on the call's stream; `kind` says how the peer spoke."""

    kind: str  # "grpc", "http1" (a plaintext HTTP/1 answer), "none"
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[bytes] = field(default_factory=list)
    reset: int | None = None
    first_line: str = ""

    @property
    def grpc_status(self) -> int | None:
        value = self.headers.get("grpc-status")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def grpc_message(self) -> str:
        """grpc-message, percent-decoded as the gRPC spec encodes it."""
        return urllib.parse.unquote(self.headers.get("grpc-message", ""))

    @property
    def http_status(self) -> str:
        return self.headers.get(":status", "")

    def summary(self) -> str:
        """One line: the gRPC status and message, or what came instead."""
        if self.kind == "http1":
            return f"an HTTP/1 answer {self.first_line!r}"
        if self.kind == "none":
            return "no answer (the connection closed)"
        if self.reset is not None:
            return f"the stream was reset (error code {self.reset})"
        status = self.grpc_status
        text = f"HTTP/2 :status {self.http_status or '?'}, grpc-status {status}"
        if self.headers.get("grpc-message"):
            text += f" ({self.grpc_message})"
        return text


def _frames(raw: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    at = 0
    while at + 9 <= len(raw):
        size = int.from_bytes(raw[at : at + 3], "big")
        kind, flags = raw[at + 3], raw[at + 4]
        stream = int.from_bytes(raw[at + 5 : at + 9], "big") & 0x7FFFFFFF
        payload = raw[at + 9 : at + 9 + size]
        if len(payload) < size:
            return
        yield kind, flags, stream, payload
        at += 9 + size


def _grpc_messages(body: bytes) -> list[bytes]:
    messages, at = [], 0
    while at + 5 <= len(body):
        size = int.from_bytes(body[at + 1 : at + 5], "big")
        messages.append(body[at + 5 : at + 5 + size])
        at += 5 + size
    return messages


def parse_answer(raw: bytes) -> Answer:
    """Read a server's bytes: HTTP/2 frames for our stream, or whatever else came."""
    if not raw:
        return Answer(kind="none")
    if raw.startswith(b"HTTP/"):
        return Answer(kind="http1", first_line=raw.split(b"\r\n", 1)[0].decode(errors="replace"))
    answer = Answer(kind="grpc")
    decoder, block, body = hpack.Decoder(), b"", b""
    for kind, flags, stream, payload in _frames(raw):
        if stream != STREAM:
            continue
        if kind in (HEADERS, CONTINUATION):
            block += _strip_header_padding(kind, flags, payload)
            if flags & END_HEADERS:
                answer.headers.update(
                    {_text(k): _text(v) for k, v in decoder.decode(block, raw=True)}
                )
                block = b""
        elif kind == DATA:
            body += payload[1 : len(payload) - payload[0]] if flags & 0x8 else payload
        elif kind == RST_STREAM:
            answer.reset = int.from_bytes(payload[:4], "big")
    answer.messages = _grpc_messages(body)
    return answer


def _strip_header_padding(kind: int, flags: int, payload: bytes) -> bytes:
    if kind != HEADERS:
        return payload
    pad = 0
    if flags & 0x8:
        pad, payload = payload[0], payload[1:]
    if flags & 0x20:
        payload = payload[5:]
    return payload[: len(payload) - pad] if pad else payload


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def call(
    host: str,
    port: int,
    method: str,
    message: bytes,
    metadata: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """Make one unary call over plaintext HTTP/2 (prior knowledge) from here."""
    raw = b""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(request_bytes(method, message, f"{host}:{port}", metadata))
        try:
            while not stream_ended(raw) and (chunk := conn.recv(65536)):
                raw += chunk
        except TimeoutError:
            pass
    return parse_answer(raw)


def stream_ended(raw: bytes) -> bool:
    """Whether the server has finished our stream (or answered HTTP/1)."""
    if raw.startswith(b"HTTP/"):
        return b"\r\n\r\n" in raw
    return any(
        stream == STREAM
        and (kind == RST_STREAM or (flags & END_STREAM and kind in (HEADERS, DATA)))
        for kind, flags, stream, _ in _frames(raw)
    )
