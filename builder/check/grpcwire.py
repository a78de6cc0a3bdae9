"""One unary gRPC call, and reading its answer: HTTP/2 through the `h2` library, and
just enough protobuf (varints and length-delimited fields, all the Faces color
contract uses) to write and read the messages.

The checks speak gRPC to a workload's gRPC port from inside a client
container, where only bash is at hand: `request_bytes` gives the exact bytes a
client sends (h2's client connection, offline), and `parse_answer` reads
whatever came back (frames, an HTTP/1 refusal, or nothing) by feeding it to the
same client connection. `call` does the same over a socket from here.
"""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STREAM = 1


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


def _client(
    method: str, message: bytes, authority: str, metadata: dict[str, str] | None
) -> h2.connection.H2Connection:
    """An HTTP/2 client connection that has sent the whole call on stream 1."""
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *sorted((metadata or {}).items()),
    ]
    connection.send_headers(STREAM, headers)
    body = b"\x00" + len(message).to_bytes(4, "big") + message  # uncompressed, length
    connection.send_data(STREAM, body, end_stream=True)
    return connection


def request_bytes(
    method: str, message: bytes, authority: str, metadata: dict[str, str] | None = None
) -> bytes:
    """The whole client side of one unary call: the preface, SETTINGS, HEADERS and DATA
    (servers keep the connection open afterwards, so a reader stops at the end of
    stream 1: `call` does, the bash probe reads until the server is idle).
    """
    return _client(method, message, authority, metadata).data_to_send()


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


def _grpc_messages(body: bytes) -> list[bytes]:
    messages, at = [], 0
    while at + 5 <= len(body):
        size = int.from_bytes(body[at + 1 : at + 5], "big")
        messages.append(body[at + 5 : at + 5 + size])
        at += 5 + size
    return messages


@dataclass
class _Reader:
    """An answer read event by event from the client connection that sent the call."""

    connection: h2.connection.H2Connection
    answer: Answer = field(default_factory=lambda: Answer(kind="grpc"))
    body: bytes = b""
    ended: bool = False

    def feed(self, raw: bytes) -> None:
        try:
            events = self.connection.receive_data(raw)
        except h2.exceptions.ProtocolError:
            self.ended = True  # what was read so far is the answer
            return
        for event in events:
            if getattr(event, "stream_id", STREAM) != STREAM:
                continue
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                self.answer.headers.update({_text(k): _text(v) for k, v in event.headers})
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
            elif isinstance(event, h2.events.StreamReset):
                self.answer.reset = int(event.error_code)
                self.ended = True
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True

    def result(self) -> Answer:
        self.answer.messages = _grpc_messages(self.body)
        return self.answer


def parse_answer(raw: bytes) -> Answer:
    """Read a server's bytes: HTTP/2 frames for our stream, or whatever else came.

    HTTP/2 is read by a client connection in the state a call leaves it (which call
    changes nothing in how the server's frames are read).
    """
    if not raw:
        return Answer(kind="none")
    if raw.startswith(b"HTTP/"):
        return Answer(kind="http1", first_line=raw.split(b"\r\n", 1)[0].decode(errors="replace"))
    reader = _Reader(_client("/", b"", "probe", None))
    reader.feed(raw)
    return reader.result()


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
    connection = _client(method, message, f"{host}:{port}", metadata)
    reader = _Reader(connection)
    head, received = b"", False
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(connection.data_to_send())
        try:
            while not reader.ended and (chunk := conn.recv(65536)):
                received = True
                if head or chunk.startswith(b"HTTP/"):  # a plaintext HTTP/1 refusal
                    head += chunk
                    if b"\r\n\r\n" in head:
                        break
                    continue
                reader.feed(chunk)
        except TimeoutError:
            pass
    if head:
        return parse_answer(head)
    return reader.result() if received else Answer(kind="none")
