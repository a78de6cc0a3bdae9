"""Small network helpers that several rooms need: a free loopback port, polling a URL
until it answers 200, and asking a proxy's admin server whether it is ready."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable

from builder.core import image_contract
from builder.core.wait import NotYet, TimedOut, until

PROXY_ADMIN_PORT = 4191


def host_port(ip: str, port: int) -> str:
    """HOST:PORT as a URL or a proxy's address takes it: an IPv6 address in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def answers_ok(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 2,
) -> tuple[bool, str]:
    """Whether `url` answers 200 now; with the reason when it does not."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.status == 200, f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(exc)


def wait_for_ok(
    url: str,
    *,
    timeout: float,
    alive: Callable[[], None] = lambda: None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    interval: float = 0.2,
) -> str | None:
    """Poll `url` until it answers 200: None then, else its last answer after `timeout`.

    `alive` is called before each try and raises when the server behind `url` has
    died, so that a dead server fails at once, not after the timeout.
    """

    def answered() -> NotYet | None:
        alive()
        ok, last = answers_ok(url, headers=headers, context=context)
        return None if ok else NotYet(last)

    try:
        until(answered, timeout=timeout, interval=interval)
    except TimedOut as exc:
        return str(exc.reason)
    return None


def proxy_readiness(
    ip: str, *, certified: Callable[[], bool] = lambda: False, timeout: float = 1
) -> tuple[bool, str]:
    """Whether the proxy at `ip` is ready, by the one rule (image_contract.proxy_ready),
    with what its /ready answered; `certified` says whether the proxy has logged its
    certified identity (asked only when /ready refuses the caller)."""
    _, said = answers_ok(f"http://{host_port(ip, PROXY_ADMIN_PORT)}/ready", timeout=timeout)
    status = int(said.removeprefix("HTTP ")) if said.startswith("HTTP ") else None
    return image_contract.proxy_ready(status, certified), said


def registry_answers(host: str, timeout: float = 3) -> tuple[bool, str]:
    """Whether the registry API at `host` answers at all (any HTTP status: Docker Hub and
    others ask for a token first); with what it said or why nothing came."""
    local = host.split(":")[0] in ("127.0.0.1", "localhost")
    url = f"{'http' if local else 'https'}://{host}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return True, f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return True, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))
