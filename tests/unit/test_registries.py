"""`make demo`'s choice between the online and the offline path: whether the online
profile's registries (through the mirrors) answer, asked of real sockets."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from builder.check.doctor import online_registries, registry_findings
from builder.cli.main import main
from builder.config.settings import load_settings
from builder.core.net import free_port, registry_answers


class TokenFirst(http.server.BaseHTTPRequestHandler):
    """Answers /v2/ as Docker Hub and ghcr.io do before a token: 401."""

    def do_GET(self) -> None:
        self.send_response(401 if self.path == "/v2/" else 404)
        self.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1/token"')
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), TokenFirst)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_registry_that_asks_for_a_token_answers(registry: str) -> None:
    assert registry_answers(registry) == (True, "HTTP 401")


def test_nothing_listening_does_not_answer() -> None:
    answers, said = registry_answers(f"127.0.0.1:{free_port()}", timeout=2)
    assert not answers
    assert "refused" in said.lower()


def test_the_online_profiles_registries_are_upstreams_or_their_mirrors() -> None:
    assert online_registries(load_settings(None, {})) == ["cr.l5d.io", "ghcr.io", "docker.io"]
    mirrored = load_settings(
        None, {"mirrors": ("cr.l5d.io=mirror.corp/l5d", "ghcr.io=mirror.corp/gh",
                           "docker.io=mirror.corp/hub")}
    )  # fmt: skip
    assert online_registries(mirrored) == ["mirror.corp"]


def test_the_demo_goes_online_only_where_every_registry_answers(registry: str) -> None:
    """Both ways, with the real probe: every registry mirrored to one that answers
    (online), then one of them to a port where nothing listens (offline)."""
    closed = f"127.0.0.1:{free_port()}"
    every = {"mirrors": tuple(f"{up}={registry}/x" for up in ("cr.l5d.io", "ghcr.io", "docker.io"))}
    assert all(f.ok for f in registry_findings(load_settings(None, every)))
    result = CliRunner().invoke(main, ["doctor", "--registries", *_flags(every)])
    assert result.exit_code == 0, result.output

    one_down = {"mirrors": (*every["mirrors"], f"ghcr.io={closed}/x")}
    findings = registry_findings(load_settings(None, one_down))
    assert [f.ok for f in findings] == [True, False]
    assert f"--mirror {closed}=" in findings[1].fix or "--offline" in findings[1].fix
    result = CliRunner().invoke(main, ["doctor", "--registries", *_flags(one_down)])
    assert result.exit_code == 1
    assert f"FAIL registry      {closed} does not answer" in result.output


def _flags(settings: dict[str, tuple[str, ...]]) -> list[str]:
    return [word for mirror in settings["mirrors"] for word in ("--mirror", mirror)]
