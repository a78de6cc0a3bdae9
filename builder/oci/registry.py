"""The one module that speaks to OCI registries over HTTP, and runs a local one.

`RegistryClient` reads and writes manifests and blobs through the registry API
(anonymous, basic, or bearer-token auth with the credentials `docker login`
stored), which is how a multi-platform image's index is put together and read
back. `LocalRegistry` runs Debian's `docker-registry` on 127.0.0.1 with a
config of its own: the builder's helper registry, and the tests' registry.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.config.mirrors import is_local
from builder.core.errors import BuildError
from builder.core.net import free_port
from builder.core.wait import NotYet, TimedOut, until
from builder.engine import docker_engine

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
REFERENCE = re.compile(
    r"^(?P<host>[^/]+)/(?P<name>[a-z0-9._/-]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?$"
)


def split_reference(reference: str) -> tuple[str, str, str]:
    """`host[:port]/name[:tag]` -> (host, name, tag); the tag defaults to latest."""
    match = REFERENCE.match(reference)
    if match is None or ("." not in match["host"] and ":" not in match["host"]):
        raise BuildError(
            f"{reference!r} names no registry host: give HOST[:PORT]/NAME[:TAG] "
            "(e.g. 127.0.0.1:5000/meshexp/smiley:1)"
        )
    return match["host"], match["name"], match["tag"] or "latest"


@dataclass
class RegistryClient:
    """The registry API of one host, with the token dance where the host asks for it."""

    host: str
    credentials: tuple[str, str] | None = None
    timeout: float = 30.0
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"{'http' if is_local(self.host) else 'https'}://{self.host}/v2"

    def manifest(self, name: str, reference: str) -> tuple[dict[str, Any], str]:
        """A manifest or index and its digest."""
        document, digest, _ = self.manifest_with_size(name, reference)
        return document, digest

    def manifest_with_size(self, name: str, reference: str) -> tuple[dict[str, Any], str, int]:
        """A manifest or index, its digest and its size in bytes (for a descriptor)."""
        body, headers = self._request(
            "GET", f"/{name}/manifests/{reference}", name, headers={"Accept": ACCEPT}
        )
        return json.loads(body), headers.get("Docker-Content-Digest", ""), len(body)

    def blob(self, name: str, digest: str) -> bytes:
        return self._request("GET", f"/{name}/blobs/{digest}", name)[0]

    def put_manifest(self, name: str, tag: str, document: dict[str, Any]) -> str:
        """Store `document` under `tag`; the registry's digest of it."""
        media = document.get("mediaType", OCI_INDEX)
        _, headers = self._request(
            "PUT",
            f"/{name}/manifests/{tag}",
            name,
            body=json.dumps(document, separators=(",", ":")).encode(),
            headers={"Content-Type": media},
            push=True,
        )
        return headers.get("Docker-Content-Digest", "")

    def _request(
        self,
        method: str,
        path: str,
        name: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        push: bool = False,
    ) -> tuple[bytes, dict[str, str]]:
        scope = f"repository:{name}:{'pull,push' if push else 'pull'}"
        for attempt in range(2):
            request = urllib.request.Request(
                self.base + path, data=body, method=method, headers=dict(headers or {})
            )
            if scope in self._tokens:
                request.add_header("Authorization", self._tokens[scope])
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return answer.read(), dict(answer.headers)
            except urllib.error.HTTPError as error:
                challenge = error.headers.get("WWW-Authenticate", "")
                if error.code == 401 and attempt == 0 and challenge:
                    self._tokens[scope] = self._authorize(challenge, scope)
                    continue
                detail = error.read().decode(errors="replace").strip()[:300]
                raise BuildError(
                    f"registry {self.host}: {method} {path} answered {error.code} "
                    f"{error.reason}: {detail or 'no detail'}"
                ) from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise BuildError(
                    f"registry {self.host} cannot be reached ({reason}): check the address "
                    "and that the registry runs"
                ) from None
        raise BuildError(f"registry {self.host}: {method} {path} was refused after logging in")

    def _authorize(self, challenge: str, scope: str) -> str:
        """The Authorization header for a Basic or Bearer challenge."""
        kind, _, rest = challenge.partition(" ")
        basic = None
        if self.credentials is not None:
            user, password = self.credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if kind.lower() == "basic":
            if basic is None:
                raise BuildError(
                    f"registry {self.host} wants a login: run `docker login {self.host}`"
                )
            return basic
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        query = urllib.parse.urlencode(
            {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        )
        request = urllib.request.Request(f"{params.get('realm', '')}?{query}")
        if basic is not None:
            request.add_header("Authorization", basic)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                token = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise BuildError(
                f"registry {self.host}: no token from {params.get('realm')} ({error}); "
                f"run `docker login {self.host}`"
            ) from None
        return "Bearer " + str(token.get("token") or token.get("access_token") or "")


def client_for(host: str) -> RegistryClient:
    return RegistryClient(host, docker_engine.registry_login(host))


@dataclass
class LocalRegistry:
    """Debian's docker-registry on 127.0.0.1, storing under `root`, until `stop()`.
    `listen` 0.0.0.0 lets containers reach it at their network's gateway too (a mirror
    for a kind cluster's nodes); `address` is this machine's 127.0.0.1 either way."""

    root: Path
    extra_config: str = ""
    listen: str = "127.0.0.1"
    address: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise BuildError(
                "a local registry needs Debian's docker-registry: apt-get install "
                "docker-registry (scripts/setup.sh does), or give --builder and a registry "
                "of your own"
            )
        port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: '{self.listen}:{port}'}}\n{self.extra_config}"
        )
        log = (self.root / "registry.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        process = self.process

        def listening() -> bool | NotYet:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return True
            if process.poll() is not None:
                return False  # it exited: its log says why
            return NotYet(f"nothing listens on 127.0.0.1:{port}")

        with contextlib.suppress(TimedOut):
            if until(listening, timeout=timeout, interval=0.1):
                self.address = f"127.0.0.1:{port}"
                return self
        self.stop()
        tail = (self.root / "registry.log").read_text(errors="replace")[-600:]
        raise BuildError(f"the local registry did not listen on 127.0.0.1:{port}:\n{tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalRegistry:
        return self.start() if self.process is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()
