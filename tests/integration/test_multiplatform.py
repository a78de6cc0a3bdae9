"""One multi-platform image through BuildKit, pushed to a real registry and read back.

`meshexp-build publish --platform linux/amd64,linux/arm64` runs as a user (and
.github/workflows/publish.yml) runs it: our own buildkitd, Debian's registry
on 127.0.0.1, the arm64 base from debootstrap under qemu, SPIRE
cross-compiled, our syft scanner. amd64 carries the real proxy; arm64 the
stand-in (no real arm64 proxy exists here), which publish allows only with
--allow-standin. The arm64 image is then pulled and started under emulation
as far as emulation allows (no iptables under qemu here).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.build.buildkit_programs import cached_buildkit
from builder.core import image_contract
from builder.core.cache import cache_root
from builder.oci.buildkit import BUILDKIT_VERSION
from builder.oci.registry import LocalRegistry, RegistryClient
from harness import apps, equipment

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ("linux/amd64", "linux/arm64")
SPDX = "https://spdx.dev/Document"
IMAGE_NAME = "meshexp-test-mp/{workload}"


def publish_command(registry: str, real_proxy: Path, *extra: str) -> list[str]:
    """The command publish.yml runs, with this machine's proxies (arm64: the stand-in)."""
    return [
        str(Path(sys.executable).parent / "meshexp-build"),
        "publish",
        "--workload",
        "smiley",
        "--platform",
        ",".join(PLATFORMS),
        "--registry",
        registry,
        "--offline",
        "--proxy-file",
        f"linux/amd64={real_proxy}",
        "--proxy-file",
        f"linux/arm64={equipment.standin_proxy('arm64')}",
        "--image-name",
        IMAGE_NAME,
        *extra,
    ]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class Published:
    registry: str
    client: RegistryClient
    name: str
    tag: str
    answer: dict[str, Any]

    def blob_json(self, digest: str) -> Any:
        return json.loads(self.client.blob(self.name, digest))

    def attestation_for(self, image_digest: str) -> dict[str, Any]:
        index, _ = self.client.manifest(self.name, self.tag)
        for entry in index["manifests"]:
            annotations = entry.get("annotations") or {}
            if annotations.get("vnd.docker.reference.digest") == image_digest:
                return self.client.manifest(self.name, entry["digest"])[0]
        raise AssertionError(f"no attestation manifest refers to {image_digest}")

    def statements(self, platform: str, predicate: str) -> list[dict[str, Any]]:
        """The in-toto statements of one platform's attestation of one predicate type."""
        digest = self.digest_of(platform)
        layers = self.attestation_for(digest)["layers"]
        return [
            self.blob_json(layer["digest"])
            for layer in layers
            if (layer.get("annotations") or {}).get("in-toto.io/predicate-type") == predicate
        ]

    def digest_of(self, platform: str) -> str:
        return next(p["digest"] for p in self.answer["platforms"] if p["platform"] == platform)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running.address


@pytest.fixture(scope="module")
def published(engine, registry: str, real_proxy: Path) -> Published:
    done = run(
        publish_command(
            registry, real_proxy, "--allow-standin", "--output", "json", "--progress", "quiet"
        )
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout)[0]
    repository, _, tag = answer["reference"].rpartition(":")
    return Published(registry, RegistryClient(registry), repository.split("/", 1)[1], tag, answer)


def test_the_index_lists_both_platforms_with_their_attestations(published: Published) -> None:
    index, digest = published.client.manifest(published.name, published.tag)
    assert digest == published.answer["digest"]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    images = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert images == {p: published.digest_of(p) for p in PLATFORMS}
    attested = {
        (m.get("annotations") or {}).get("vnd.docker.reference.digest")
        for m in index["manifests"]
        if m["platform"]["os"] == "unknown"
    }
    assert attested == set(images.values())


def test_each_platform_config_says_its_own_architecture(published: Published) -> None:
    labels = {}
    for platform in PLATFORMS:
        manifest, _ = published.client.manifest(published.name, published.digest_of(platform))
        config = published.blob_json(manifest["config"]["digest"])
        assert f"{config['os']}/{config['architecture']}" == platform
        labels[platform] = config["config"]["Labels"]
    # Each platform carries its own binaries: the labels name different files.
    assert (
        labels["linux/amd64"]["io.meshexp.source.proxy"]
        != (labels["linux/arm64"]["io.meshexp.source.proxy"])
    )
    assert "io.meshexp.proxy-standin" in labels["linux/arm64"]
    assert "io.meshexp.proxy-standin" not in labels["linux/amd64"]
    standins = {p["platform"]: p["standin"] for p in published.answer["platforms"]}
    assert standins == {"linux/amd64": False, "linux/arm64": True}


def test_the_sbom_lists_debian_packages_and_go_modules_per_platform(
    published: Published,
) -> None:
    for platform in PLATFORMS:
        arch = platform.split("/")[1]
        statements = published.statements(platform, SPDX)
        assert statements, f"{platform} has no SPDX attestation"
        packages = [p for s in statements for p in s["predicate"].get("packages", [])]
        purls = [
            ref["referenceLocator"]
            for package in packages
            for ref in package.get("externalRefs", [])
            if ref.get("referenceType") == "purl"
        ]
        debian = [purl for purl in purls if purl.startswith("pkg:deb/debian/iptables@")]
        assert debian, f"{platform}: iptables is not in the SBOM"
        assert all(f"arch={arch}" in purl for purl in debian), debian
        assert any(purl.startswith("pkg:golang/github.com/spiffe/spire@v1.13.3") for purl in purls)
        subjects = {s["digest"]["sha256"] for st in statements for s in st["subject"]}
        assert published.digest_of(platform).removeprefix("sha256:") in subjects


def values_of(document: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(document, dict):
        found = [document[key]] if key in document else []
        return found + [v for value in document.values() for v in values_of(value, key)]
    if isinstance(document, list):
        return [v for item in document for v in values_of(item, key)]
    return []


def test_the_provenance_names_the_source_revision(published: Published) -> None:
    revision = run(["git", "rev-parse", "HEAD"]).stdout.strip()
    assert revision
    for platform in PLATFORMS:
        [statement] = published.statements(platform, "https://slsa.dev/provenance/v1")
        predicate = statement["predicate"]
        assert revision in values_of(predicate, "vcs:revision")
        # mode=max: the build's full definition is recorded, not only its request.
        assert "buildConfig" in predicate["buildDefinition"]["internalParameters"]
        subjects = {s["digest"]["sha256"] for s in statement["subject"]}
        assert published.digest_of(platform).removeprefix("sha256:") in subjects


@pytest.fixture(scope="module")
def arm64_image(engine, published: Published) -> Iterator[str]:
    reference = published.answer["reference"]
    image = engine.images.pull(reference, platform="linux/arm64")
    assert image.attrs["Architecture"] == "arm64"
    yield reference
    engine.images.remove(image.id, force=True)


def run_arm64(engine, reference: str, command: list[str], entrypoint: str) -> tuple[int, str]:
    container = engine.containers.run(
        reference, command, entrypoint=entrypoint, platform="linux/arm64", detach=True
    )
    try:
        status = container.wait(timeout=300)
        return int(status["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def test_the_arm64_image_runs_its_binaries_under_emulation(engine, arm64_image: str) -> None:
    code, machine = run_arm64(engine, arm64_image, ["-c", "uname -m"], "/bin/bash")
    assert (code, machine.strip()) == (0, "aarch64")
    code, version = run_arm64(engine, arm64_image, ["--version"], image_contract.SPIRE_AGENT)
    assert code == 0, version
    assert "1.13.3" in version
    code, output = run_arm64(engine, arm64_image, [], image_contract.PROXY)
    assert "PROXY STAND-IN: not a Linkerd proxy" in output, output


def test_the_arm64_bootstrap_checks_its_input_under_emulation(engine, arm64_image: str) -> None:
    container = engine.containers.run(
        arm64_image,
        platform="linux/arm64",
        environment={"WORKLOAD_NAME": "Bad_Name"},
        detach=True,
    )
    try:
        status = container.wait(timeout=300)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 64, logs
    assert "WORKLOAD_NAME=Bad_Name is not a DNS-1123 label" in logs
    assert "nothing was started or changed" in logs


def test_the_arm64_bootstrap_passes_its_checks_and_reaches_the_capture(
    engine, arm64_image: str, certs: Path
) -> None:
    """With good input it gets as far as emulation allows: the capture (see the README)."""
    container = engine.containers.run(
        arm64_image,
        platform="linux/arm64",
        cap_add=["NET_ADMIN", "NET_RAW"],
        volumes={str(certs): {"bind": "/opt/spire/certs", "mode": "ro"}},
        environment={"WORKLOAD_NAME": "smiley", "WORKLOAD_NAMESPACE": "faces", "NODE_NAME": "e"},
        detach=True,
    )
    try:
        with contextlib.suppress(Exception):
            container.wait(timeout=120)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert "bootstrap: starting smiley.faces as spiffe://" in logs, logs
    assert "problem(s) above" not in logs


def test_a_push_the_registry_refuses_fails_in_one_line(
    engine, real_proxy: Path, tmp_path: Path
) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("someone:$2y$05$abcdefghijklmnopqrstuuDUmmyhashDUmmyhashDUmmyhashDU\n")
    with LocalRegistry(
        tmp_path / "locked", f"auth: {{htpasswd: {{realm: test, path: {htpasswd}}}}}\n"
    ) as locked:
        done = run(
            publish_command(locked.address, real_proxy, "--allow-standin", "--progress", "quiet")
        )
    assert done.returncode == 4, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: the registry refused the push of {locked.address}/")
    assert "401 Unauthorized" in line
    assert f"docker login {locked.address}" in line


def test_a_platform_without_its_proxy_fails_before_any_build(real_proxy: Path) -> None:
    command = publish_command("127.0.0.1:9", real_proxy, "--allow-standin")
    given = command.index(f"linux/arm64={equipment.standin_proxy('arm64')}")
    command[given] = f"linux/arm64={real_proxy}"
    done = run(command)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "is a linux/amd64 binary, and this build is for linux/arm64" in done.stderr
    assert "--proxy-file linux/arm64=FILE" in done.stderr


def test_the_stand_in_is_refused_without_allow_standin(real_proxy: Path) -> None:
    done = run(publish_command("127.0.0.1:9", real_proxy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "publish refuses the proxy stand-in for linux/arm64" in done.stderr


def test_an_unreachable_builder_fails_in_one_line(real_proxy: Path, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/no-buildkitd.sock"
    done = run(publish_command("127.0.0.1:9", real_proxy, "--allow-standin", "--builder", address))
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1
    assert f"the builder at {address} does not answer" in lines[0]


@pytest.fixture
def users_buildkitd(tmp_path: Path) -> Iterator[str]:
    """A buildkitd the user runs (ours from the cache, with a config of its own that
    names no registry): publish --builder speaks to it instead of starting one. It
    keeps its state where our own builder does (holding the same lock), as a user's
    long-running builder has its cache: the build steps are the other tests' already."""
    programs = cached_buildkit(BUILDKIT_VERSION)
    state = cache_root() / "buildkit"
    state.mkdir(parents=True, exist_ok=True)
    socket = tmp_path / "buildkitd.sock"
    config = tmp_path / "buildkitd.toml"
    config.write_text(
        f'root = "{state / "root"}"\n[grpc]\n  address = ["unix://{socket}"]\n'
        '[worker.oci]\n  enabled = true\n  platforms = ["linux/amd64", "linux/arm64"]\n'
        "[worker.containerd]\n  enabled = false\n"
    )
    env = {**os.environ, "PATH": f"/usr/sbin:/sbin:{os.environ['PATH']}"}
    with (state / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        daemon = subprocess.Popen(
            [str(programs["buildkitd"]), "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not socket.exists() and daemon.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert socket.exists(), "the user's buildkitd did not start within 60 s"
            yield f"unix://{socket}"
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)


def test_a_given_builder_without_attestations_makes_one_index(
    engine, registry: str, real_proxy: Path, users_buildkitd: str
) -> None:
    done = run(
        publish_command(
            registry,
            real_proxy,
            "--allow-standin",
            "--builder",
            users_buildkitd,
            "--no-sbom",
            "--no-provenance",
            "--tag",
            "bare",
            "--output",
            "json",
            "--progress",
            "quiet",
        )
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [answer] = json.loads(done.stdout)
    client = RegistryClient(registry)
    index, digest = client.manifest("meshexp-test-mp/smiley", "bare")
    assert digest == answer["digest"]
    # No attestations: BuildKit pushed bare image manifests, described here in one index.
    platforms = [
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    ]
    assert platforms == list(PLATFORMS)
    for entry in index["manifests"]:
        manifest, found = client.manifest("meshexp-test-mp/smiley", entry["digest"])
        assert found == entry["digest"]
        assert manifest["mediaType"] == entry["mediaType"]


# The arm64 mesh's own programs, from its folder alone (the application has no shell).
PROGRAMS = (
    " ".join(["export", *(f"{k}={v}" for k, v in image_contract.EXEC_ENVIRONMENT.items()), ";"])
    + " echo $HOSTTYPE; spire-agent --version; iptables-legacy --version"
)


def test_an_application_index_is_meshed_for_each_platform(
    engine, registry: str, real_proxy: Path, tmp_path: Path
) -> None:
    """publish --from an application published for amd64 and arm64: each platform's
    image is that platform's application, its layers untouched, with that platform's
    mesh laid on top (its programs run under emulation on arm64)."""
    application = apps.scratch_index(registry, "mp", tmp_path)
    command = publish_command(registry, real_proxy, "--allow-standin", "--no-sbom")
    at = command.index("--workload")
    del command[at : at + 2]  # the application instead of a catalog workload
    done = run(
        [
            *command,
            "--from", application, "--workload", "scratch-app", "--no-provenance",
            "--output", "json", "--progress", "quiet",
        ]
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [answer] = json.loads(done.stdout)
    client = RegistryClient(registry)
    app_name, _, app_tag = application.split("/", 1)[1].rpartition(":")
    app_index, _ = client.manifest(app_name, app_tag)
    name = answer["reference"].split("/", 1)[1].rpartition(":")[0]
    for platform in answer["platforms"]:
        arch = platform["platform"].split("/")[1]
        manifest, _ = client.manifest(name, platform["digest"])
        config = json.loads(client.blob(name, manifest["config"]["digest"]))
        assert config["architecture"] == arch
        assert config["config"]["Labels"][image_contract.APPLICATION_IMAGE] == application
        [app_entry] = [e for e in app_index["manifests"] if e["platform"]["architecture"] == arch]
        app_manifest, _ = client.manifest(app_name, app_entry["digest"])
        app_layers = [layer["digest"] for layer in app_manifest["layers"]]
        layers = [layer["digest"] for layer in manifest["layers"]]
        assert layers[: len(app_layers)] == app_layers  # the application's, untouched
        assert len(layers) > len(app_layers)
    image = engine.images.pull(answer["reference"], platform="linux/arm64")
    try:
        assert image.attrs["Architecture"] == "arm64"
        code, output = run_arm64(engine, answer["reference"], ["-c", PROGRAMS], image_contract.BASH)
        assert code == 0, output
        assert output.split()[:1] == ["aarch64"]
        assert "1.13.3" in output
        assert "iptables v" in output
    finally:
        engine.images.remove(image.id, force=True)
