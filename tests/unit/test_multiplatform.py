"""The pure parts of multi-platform publishing: settings, ELF checks, indexes, config."""

from __future__ import annotations

import base64
import json
import os
import tomllib
from pathlib import Path

import pytest

from builder.build.render import RenderResult
from builder.build.sources import elf_arch, fetch
from builder.config.mirrors import is_local
from builder.config.settings import load_settings
from builder.config.sources import FileSource
from builder.core.errors import BuildError, SettingsError, SourceError
from builder.engine.docker_engine import registry_login
from builder.oci import buildkit
from builder.oci.multiplatform import image_digest, merge_indexes, refuse_standins
from builder.oci.registry import split_reference

X86_64, AARCH64 = 62, 183


def elf(path: Path, machine: int) -> Path:
    """A file with a 64-bit little-endian ELF header for `machine` (enough to be inspected)."""
    header = b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44)
    path.write_bytes(header)
    return path


def test_several_platforms_and_a_proxy_file_per_platform(tmp_path: Path) -> None:
    amd, arm = elf(tmp_path / "amd", X86_64), elf(tmp_path / "arm", AARCH64)
    settings = load_settings(
        None,
        {
            "offline": True,
            "platform": "linux/amd64,linux/arm64",
            "proxy_file": (f"linux/amd64={amd}", f"linux/arm64={arm}"),
        },
    )
    assert settings.target_platforms == ("linux/amd64", "linux/arm64")
    narrowed = settings.for_platform("linux/arm64")
    assert (narrowed.arch, narrowed.proxy(), narrowed.target_platforms) == (
        "arm64",
        FileSource(path=arm),
        ("linux/arm64",),
    )
    assert settings.for_platform("linux/amd64").proxy() == FileSource(path=amd)


def test_a_single_platform_stays_the_classic_setting(tmp_path: Path) -> None:
    proxy, arm = elf(tmp_path / "proxy", X86_64), elf(tmp_path / "arm", AARCH64)
    settings = load_settings(None, {"platform": "linux/arm64", "proxy_file": (str(proxy),)})
    assert settings.target_platforms == ("linux/arm64",)
    assert settings.proxy() == FileSource(path=proxy)
    # render --platform linux/arm64 --proxy-file linux/arm64=FILE picks that file.
    given = (str(proxy), f"linux/arm64={arm}")
    settings = load_settings(None, {"platform": "linux/arm64", "proxy_file": given})
    assert settings.proxy() == FileSource(path=arm)


def test_an_unknown_platform_in_a_list_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"platforms\[1\]: .*linux/s390x"):
        load_settings(None, {"platform": "linux/amd64,linux/s390x"})


def test_a_binary_of_another_architecture_is_refused_with_the_fix(tmp_path: Path) -> None:
    amd = elf(tmp_path / "proxy", X86_64)
    assert fetch(FileSource(path=amd), "proxy", "amd64").path == amd
    with pytest.raises(SourceError, match="is a linux/amd64 binary, and this build is for"):
        fetch(FileSource(path=amd), "proxy", "arm64")
    assert elf_arch(amd.read_bytes()[:20]) == "amd64"
    assert elf_arch(b"#!/bin/sh\n" + bytes(10)) is None


def test_indexes_merge_into_one_and_name_each_platform() -> None:
    amd = {
        "manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:aa", "platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    arm = {
        "manifests": [{"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64"}}]
    }
    merged = merge_indexes([amd, arm])
    assert [m["digest"] for m in merged["manifests"]] == ["sha256:a", "sha256:aa", "sha256:b"]
    assert merged["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert image_digest(merged, "linux/arm64") == "sha256:b"
    with pytest.raises(BuildError, match="no linux/s390x image"):
        image_digest(merged, "linux/s390x")


def test_publish_refuses_a_stand_in_unless_allowed(tmp_path: Path) -> None:
    def result(standin: bool) -> RenderResult:
        return RenderResult(output=tmp_path, image="x:y", components=(), standin=standin)

    rendered = {"linux/amd64": result(False), "linux/arm64": result(True)}
    with pytest.raises(SettingsError, match="--proxy-file linux/arm64=FILE"):
        refuse_standins(rendered, allow_standin=False)
    refuse_standins(rendered, allow_standin=True)
    refuse_standins({"linux/amd64": result(False)}, allow_standin=False)


def test_the_daemon_config_builds_both_platforms_and_trusts_local_registries() -> None:
    config = buildkit.daemon_config(Path("/s"), Path("/r/b.sock"), ["127.0.0.1:5000"])
    assert 'platforms = ["linux/amd64", "linux/arm64"]' in config
    assert 'address = ["unix:///r/b.sock"]' in config
    assert '[registry."127.0.0.1:5000"]\n  http = true' in config
    assert "[worker.containerd]\n  enabled = false" in config


def test_a_registry_named_twice_is_configured_once() -> None:
    """The target registry is also where publish --from takes the application: one
    table, which TOML (and buildkitd) accepts."""
    hosts = ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5000"]
    config = tomllib.loads(buildkit.daemon_config(Path("/s"), Path("/r/b.sock"), hosts))
    assert sorted(config["registry"]) == ["127.0.0.1:5000", "127.0.0.1:5001"]
    assert config["registry"]["127.0.0.1:5000"] == {"http": True, "insecure": True}


def test_buildctl_errors_come_down_to_their_line() -> None:
    output = (
        "#5 pushing\n#5 ERROR: failed to push\n------\nerror: failed to push x: 401 Unauthorized\n"
    )
    assert buildkit.last_error(output) == "failed to push x: 401 Unauthorized"
    assert buildkit.last_error("") == "no output"
    refused = buildkit.push_refusal(
        "failed to solve: failed to push 127.0.0.1:5000/meshexp/smiley: unexpected status "
        "from HEAD request to http://127.0.0.1:5000/v2/...: 401 Unauthorized"
    )
    assert refused is not None
    assert refused.startswith("the registry refused the push of 127.0.0.1:5000/meshexp/smiley")
    assert "401 Unauthorized" in refused
    assert "docker login 127.0.0.1:5000" in refused
    assert buildkit.push_refusal("process apt-get did not complete: exit code 100") is None


def test_emulation_is_asked_of_binfmt_misc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "BINFMT", tmp_path)
    monkeypatch.setattr(buildkit, "HOST_ARCH", "amd64")
    assert buildkit.emulation_missing("linux/amd64") is None
    assert "update-binfmts --enable qemu-aarch64" in str(buildkit.emulation_missing("linux/arm64"))
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu\n")
    assert buildkit.emulation_missing("linux/arm64") is None
    (tmp_path / "qemu-aarch64").write_text("disabled\n")
    assert buildkit.emulation_missing("linux/arm64") is not None


def test_registry_references_and_credentials(tmp_path: Path) -> None:
    assert split_reference("127.0.0.1:5000/meshexp/smiley:1") == (
        "127.0.0.1:5000",
        "meshexp/smiley",
        "1",
    )
    assert split_reference("ghcr.io/org/smiley") == ("ghcr.io", "org/smiley", "latest")
    with pytest.raises(BuildError, match="names no registry host"):
        split_reference("meshexp/smiley:1")
    assert is_local("127.0.0.1:5000")
    assert not is_local("ghcr.io")
    auth = base64.b64encode(b"me:secret").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://ghcr.io": {"auth": auth}}})
    )
    assert registry_login("ghcr.io", tmp_path) == ("me", "secret")
    assert registry_login("quay.io", tmp_path) is None


def helper_on_path(folder: Path, name: str, known: dict[str, tuple[str, str]]) -> None:
    """A docker-credential-NAME speaking the credential helpers' protocol (`get` reads the
    server on stdin and answers JSON), as pass, secretservice or osxkeychain do."""
    answers = {
        server: {"Username": user, "Secret": secret} for server, (user, secret) in known.items()
    }
    script = folder / f"docker-credential-{name}"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"known = {answers!r}\n"
        "server = sys.stdin.read().strip()\n"
        "if sys.argv[1] != 'get' or server not in known:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(json.dumps({'ServerURL': server, **known[server]}))\n"
    )
    script.chmod(0o755)


def test_registry_logins_kept_by_a_credential_store_or_helper_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker login` with credsStore/credHelpers keeps nothing in `auths`: the push
    went anonymous before; now the login is resolved as the Docker CLI does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper_on_path(bin_dir, "teststore", {"ghcr.io": ("me", "from-store")})
    helper_on_path(bin_dir, "quayhelper", {"quay.io": ("robot", "from-helper")})
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {"ghcr.io": {}, "quay.io": {}},
                "credsStore": "teststore",
                "credHelpers": {"quay.io": "quayhelper"},
            }
        )
    )
    assert registry_login("ghcr.io", tmp_path) == ("me", "from-store")
    assert registry_login("quay.io", tmp_path) == ("robot", "from-helper")
    assert registry_login("registry.example", tmp_path) is None


def test_doctor_names_what_several_platforms_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.check import doctor

    monkeypatch.setattr(buildkit, "BINFMT", tmp_path)
    monkeypatch.setattr(doctor, "HOST_ARCH", "amd64")
    monkeypatch.setattr(buildkit, "HOST_ARCH", "amd64")
    single = load_settings(None, {"offline": True})
    assert doctor._platform_findings(single) == []
    several = load_settings(None, {"offline": True, "platform": "linux/amd64,linux/arm64"})
    found = {finding.what: finding for finding in doctor._platform_findings(several)}
    assert not found["emulation linux/arm64"].ok
    assert "update-binfmts" in found["emulation linux/arm64"].detail
    assert {"buildkit", "C cross compiler linux/arm64", "helper registry"} <= set(found)


def test_the_commands_say_what_several_platforms_need() -> None:
    from click.testing import CliRunner

    from builder.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["publish", "--workload", "smiley"])
    assert done.exit_code == 2
    assert "give --registry HOST[:PORT][/PATH] (or --prepare)" in done.output
    done = runner.invoke(
        main, ["image", "--workload", "smiley", "--platform", "linux/amd64,linux/arm64"]
    )
    assert done.exit_code == 2
    assert "built through BuildKit into a registry: add --push --registry" in done.output
