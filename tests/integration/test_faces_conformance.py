"""Our Faces programs against upstream's v2.0.0, side by side, on one request corpus.

Each case starts the upstream binary (test equipment from shared/) and ours
with the same environment, sends both the same requests and asserts equal
answers: status, the headers Faces sets, the JSON body (but the per-connection
client address), gRPC status and message, the start-up lines that report how
the environment was read, and the request counters on :9090. The README's
"Faces compatibility" section names what is compared; nothing is excluded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import equipment, faces
from harness.faces import Program

PEER = {"X-Faces-User": "alice", "User-Agent": "conformance/1"}
GET_ROOT = ("GET", "/", {})


@pytest.fixture(scope="module")
def ours() -> dict[str, Path]:
    return equipment.our_faces()


@pytest.fixture(scope="module")
def launch(engine, plain_base, module_network) -> Iterator[Any]:
    """start(binary, name, env) -> Program; every program is removed afterwards."""
    started: list[Program] = []

    def start(binary: Path, name: str, env: dict[str, str]) -> Program:
        program = faces.start(engine, plain_base, module_network, binary, name, env)
        started.append(program)
        return program

    yield start
    for program in started:
        program.stop()


def side_by_side(
    launch, real_faces, ours, name: str, env: dict[str, str]
) -> tuple[Program, Program]:
    return launch(real_faces[name], name, env), launch(ours[name], name, env)


def assert_same_start_and_counters(upstream: Program, own: Program) -> None:
    assert faces.config_lines(own.logs()) == faces.config_lines(upstream.logs())
    assert faces.config_lines(upstream.logs()), "no start-up lines to compare"
    assert faces.requests_total(own.ip) == faces.requests_total(upstream.ip)


SMILEY_CASES = {
    "defaults": (
        {},
        [
            GET_ROOT,
            ("GET", "/center/?row=1&col=2", PEER),
            ("GET", "/edge/anything?row=x", PEER),
            ("POST", "/", PEER),
            ("PUT", "/center/", {}),
            ("HEAD", "/", PEER),
        ],
    ),
    "named smiley and pod": ({"SMILEY": "HeartEyes", "HOST_IP": "10.1.2.3"}, [GET_ROOT]),
    "names are case-sensitive": ({"SMILEY": "grinning"}, [GET_ROOT]),
    "an emoji is not a name": ({"SMILEY": "\U0001f600"}, [GET_ROOT]),
    "every request fails": ({"ERROR_FRACTION": "100"}, [GET_ROOT, ("HEAD", "/", {})]),
    "fraction above 100 is clamped": ({"ERROR_FRACTION": "250"}, [GET_ROOT]),
    "negative fraction is clamped": ({"ERROR_FRACTION": "-5"}, [GET_ROOT, GET_ROOT]),
    "malformed values are ignored": (
        {"ERROR_FRACTION": "lots", "DELAY_BUCKETS": "x,-5, 20,7", "MAX_RATE": "fast"},
        [GET_ROOT],
    ),
    "latched errors": ({"ERROR_FRACTION": "100", "LATCH_FRACTION": "100"}, [GET_ROOT, GET_ROOT]),
    "rate limit": ({"MAX_RATE": "0.3"}, [GET_ROOT] * 4),
    "user header name": (
        {"USER_HEADER_NAME": "X-Who"},
        [("GET", "/", {"X-Who": "bob", "X-Faces-User": "carol"})],
    ),
}


@pytest.mark.parametrize("case", SMILEY_CASES)
def test_smiley_conforms(launch, real_faces, ours, case: str) -> None:
    env, requests = SMILEY_CASES[case]
    upstream, own = side_by_side(launch, real_faces, ours, "smiley", env)
    user_header = env.get("USER_HEADER_NAME", "X-Faces-User")
    for method, path, headers in requests:
        want = faces.http_call(upstream.ip, method, path, headers, user_header)
        got = faces.http_call(own.ip, method, path, headers, user_header)
        assert got == want, f"{method} {path}"
    assert_same_start_and_counters(upstream, own)


def test_smiley_answers_as_the_readme_says(launch, real_faces) -> None:
    """The facts the README states about upstream, checked against upstream itself."""
    grinning = launch(real_faces["smiley"], "smiley", {"SMILEY": "Grinning"})
    unknown = launch(real_faces["smiley"], "smiley", {"SMILEY": "NoSuchFace"})
    assert faces.http_call(grinning.ip, *GET_ROOT)["body"]["smiley"] == "&#x1F603;"
    assert faces.http_call(unknown.ip, *GET_ROOT)["body"]["smiley"] == "&#x1F92E;"
    assert faces.http_call(grinning.ip, "POST", "/", {})["status"] == 405


COLOR_CASES = {
    "defaults": {},
    "named color": {"COLOR": "green"},
    "unknown name": {"COLOR": "nope"},
    "hex value": {"COLOR": "#123456"},
    "every request fails": {"ERROR_FRACTION": "100"},
    "latched errors": {"ERROR_FRACTION": "100", "LATCH_FRACTION": "100"},
    "rate limit": {"MAX_RATE": "0.2"},
    "malformed values are ignored": {"ERROR_FRACTION": "x", "DELAY_BUCKETS": "5,y"},
}
COLOR_CALLS = [
    ("/ColorService/Center", 1, 2, {"x-faces-user": "alice", "user-agent": "conformance/1"}),
    ("/ColorService/Edge", -1, -1, {}),
    ("/ColorService/Edge", 0, 7, {}),
    ("/ColorService/Nope", 0, 0, {}),
]


@pytest.mark.parametrize("case", COLOR_CASES)
def test_color_conforms(launch, real_faces, ours, case: str) -> None:
    upstream, own = side_by_side(launch, real_faces, ours, "color", COLOR_CASES[case])
    for method, row, column, metadata in COLOR_CALLS:
        want = faces.grpc_call(upstream.ip, method, row, column, metadata)
        got = faces.grpc_call(own.ip, method, row, column, metadata)
        assert got == want, method
        assert want["kind"] == "grpc"
    assert_same_start_and_counters(upstream, own)


def test_color_speaks_grpc_only(launch, real_faces, ours) -> None:
    """An HTTP/1 request gets HTTP/2 frames back from both, never an HTTP/1 answer."""
    for program in side_by_side(launch, real_faces, ours, "color", {}):
        with pytest.raises(Exception) as refused:  # noqa: PT011 - http.client's error varies
            faces.http_call(program.ip, *GET_ROOT)
        assert "HTTP/1" not in str(refused.value)


@pytest.fixture(scope="module")
def backends(launch, real_faces) -> dict[str, Program]:
    """Upstream smiley and color, healthy and failing, for both faces to call."""
    return {
        "smiley": launch(real_faces["smiley"], "smiley", {"SMILEY": "Kaboom"}),
        "color": launch(real_faces["color"], "color", {"COLOR": "purple"}),
        "bad-smiley": launch(real_faces["smiley"], "smiley", {"ERROR_FRACTION": "100"}),
        "bad-color": launch(real_faces["color"], "color", {"ERROR_FRACTION": "100"}),
    }


def face_env(backends: dict[str, Program], smiley: str, color: str) -> dict[str, str]:
    def address(spec: str) -> str:
        name, _, port = spec.partition(":")
        ip = backends[name].ip
        return f"{ip}:{port}" if port else ip

    return {"SMILEY_SERVICE": address(smiley), "COLOR_SERVICE": address(color)}


FACE_CASES = {
    "both backends answer": (
        ("smiley:8000", "color:8000"),
        {},
        [
            ("GET", "/center/?row=1&col=2", PEER),
            ("GET", "/edge/?row=3&col=4", PEER),
            GET_ROOT,
            ("POST", "/", {}),
            ("HEAD", "/", {}),
        ],
    ),
    "both backends fail": (("bad-smiley:8000", "bad-color:8000"), {}, [("GET", "/center/", PEER)]),
    "both backends unreachable": (("smiley:9", "color:9"), {}, [("GET", "/edge/", PEER)]),
    "color without a port gets :80": (("smiley:8000", "color"), {}, [GET_ROOT]),
    "face itself fails": (("smiley:8000", "color:8000"), {"ERROR_FRACTION": "100"}, [GET_ROOT]),
}


@pytest.mark.parametrize("case", FACE_CASES)
def test_face_conforms(launch, real_faces, ours, backends, case: str) -> None:
    (smiley, color), extra, requests = FACE_CASES[case]
    env = {**face_env(backends, smiley, color), **extra}
    upstream, own = side_by_side(launch, real_faces, ours, "face", env)
    for method, path, headers in requests:
        want = faces.http_call(upstream.ip, method, path, headers)
        got = faces.http_call(own.ip, method, path, headers)
        assert got == want, f"{method} {path}"
    assert_same_start_and_counters(upstream, own)


def test_face_forwards_query_user_and_agent(launch, ours, backends) -> None:
    """A failing smiley echoes the request it got; ours forwards what upstream does."""
    own = launch(ours["face"], "face", face_env(backends, "bad-smiley:8000", "color:8000"))
    answer = faces.http_call(own.ip, "GET", "/center/?row=5&col=6", PEER)
    assert answer["status"] == 200
    assert answer["body"]["smiley"] == "&#x1F92C;"  # Cursing: the smiley failed
    assert answer["body"]["color"] == "#AA3377"  # purple: color answered
    [error] = answer["body"]["errors"]
    assert '"path":"/center/"' in error
    assert '"X-Faces-User":["alice"]' in error
    assert '"User-Agent":["conformance/1"]' in error
