"""Rendered build contexts: golden files, linters, and that catalog values stay inert."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.build import plan, render, templates
from builder.build.render import render_build_context, render_files
from builder.config.catalog import load_catalog
from builder.config.settings import Settings, load_settings
from builder.config.sources import FileSource
from builder.core import image_contract
from builder.core.errors import RenderError, SourceError
from tests.conftest import matches_golden

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

# Every catalog workload at the default release, plus smiley on either side
# of each contract change (socket name 2.18 -> 2.19, status subresource and
# workload IPs 2.15 -> 2.16/2.17) and in the production topology.
VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "linkerd-2.15": {"linkerd_version": "2.15"},
    "linkerd-2.18": {"linkerd_version": "2.18"},
    "production": {"topology": "production"},
    "offline": {"offline": True, "proxy_file": "/opt/linkerd2-proxy"},
    "multicall": {"offline": True, "proxy_file": "/opt/linkerd2-proxy", "spire_multicall": True},
}


def golden_cases() -> list[tuple[str, str]]:
    cases = [(name, "default") for name in sorted(load_catalog())]
    return cases + [("smiley", variant) for variant in VARIANTS if variant != "default"]


@pytest.mark.parametrize(("workload", "variant"), golden_cases())
def test_rendered_files_match_golden(workload: str, variant: str, update_golden: bool) -> None:
    settings = load_settings(None, dict(VARIANTS[variant]))
    files = render_files(load_catalog()[workload], settings)
    matches_golden(files, GOLDEN / f"{workload}-{variant}", update_golden)


def test_versions_change_what_the_contract_says() -> None:
    smiley = load_catalog()["smiley"]
    old = render_files(smiley, load_settings(None, {"linkerd_version": "2.18"}))
    new = render_files(smiley, load_settings(None, {"linkerd_version": "2.19"}))
    assert "export LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET=" in old["scripts/run-proxy"][0]
    assert "WORKLOAD_API_ADDRESS" not in old["scripts/run-proxy"][0]
    assert (
        "export LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS=" in new["scripts/run-proxy"][0]
    )
    assert "IPTABLES=iptables-legacy" in old["scripts/bootstrap"][0]
    assert "IPTABLES=iptables-nft" in new["scripts/bootstrap"][0]
    v215 = render_files(smiley, load_settings(None, {"linkerd_version": "2.15"}))
    assert "SHUTDOWN_ENDPOINT_ENABLED" not in v215["scripts/run-proxy"][0]
    assert "SHUTDOWN_ENDPOINT_ENABLED" in old["scripts/run-proxy"][0]


def test_inbound_default_policy_is_set_exactly_once() -> None:
    settings = load_settings(None, {"inbound_default_policy": "deny"})
    files = render_files(load_catalog()["smiley"], settings)
    run_proxy = files["scripts/run-proxy"][0]
    assert run_proxy.count("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=") == 1
    assert (
        "INBOUND_POLICY=${LINKERD2_PROXY_INBOUND_DEFAULT_POLICY:-deny}"
        in files["scripts/bootstrap"][0]
    )


def test_workload_layer_comes_last() -> None:
    dockerfile = render_files(load_catalog()["smiley"], Settings())["Dockerfile"][0]
    steps = [
        line.split()[0:2] for line in dockerfile.splitlines() if line.startswith(("COPY", "RUN"))
    ]
    assert steps[-2:] == [["COPY", "workload/launch"], ["COPY", "--from=src-workload-smiley"]]


@pytest.mark.parametrize("variant", ["default", "offline"])
def test_every_workload_binary_is_copied_where_its_command_runs_it(variant: str) -> None:
    """The binaries land at /opt/workload/bin/NAME, where catalog entries name them, from
    a build stage or from the context alike (a context's binary once went elsewhere)."""
    settings = load_settings(None, dict(VARIANTS[variant]))
    for name, workload in load_catalog().items():
        dockerfile = render_files(workload, settings)["Dockerfile"][0]
        copies = {
            line.split()[-1]: line.split()[-2]
            for line in dockerfile.splitlines()
            if line.startswith("COPY ")
        }
        for binary in workload.binaries:
            target = f"{image_contract.WORKLOAD_BIN}/{binary.name}"
            assert target in copies, (name, variant, target)


def _all_rendered() -> list[tuple[str, dict[str, tuple[str, int]]]]:
    out = []
    for variant, overrides in VARIANTS.items():
        for name, workload in load_catalog().items():
            out.append(
                (f"{name}-{variant}", render_files(workload, load_settings(None, dict(overrides))))
            )
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every variant written out, for the linters."""
    folders = []
    for label, files in _all_rendered():
        folder = tmp_path_factory.mktemp(label)
        for relative, (text, _) in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        folders.append(folder)
    return folders


SCRIPTS = ("scripts/bootstrap", "scripts/run-proxy", "workload/launch")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(os.sys.executable).parent))
    assert found, f"{name} is not installed; pip install -e '.[dev]'"
    return found


def test_scripts_pass_bash_n_and_shellcheck(rendered: list[Path]) -> None:
    shellcheck = _tool("shellcheck")
    for folder in rendered:
        for script in SCRIPTS:
            path = folder / script
            subprocess.run(["bash", "-n", str(path)], check=True)
            result = subprocess.run(
                [shellcheck, "--shell=bash", "--severity=style", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"{path}:\n{result.stdout}"


def test_dockerfiles_pass_hadolint(rendered: list[Path]) -> None:
    hadolint = _tool("hadolint")
    for folder in rendered:
        result = subprocess.run(
            [hadolint, str(folder / "Dockerfile")], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{folder}/Dockerfile:\n{result.stdout}"


HOSTILE_VALUES = [
    "$(touch {marker})",
    "`touch {marker}`",
    "'; touch {marker}; '",
    '"; touch {marker}; "',
    "${{IFS}}$(touch${{IFS}}{marker})",
    "\\'$(touch {marker})\\'",
]


def test_hostile_env_values_cannot_execute(write_workload, tmp_path: Path) -> None:
    """Render a workload whose env values are shell injections; run its launch script."""
    marker = tmp_path / "pwned"
    values = [value.format(marker=marker) for value in HOSTILE_VALUES]
    env_yaml = "\n".join(
        f'  V{index}: "{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for index, value in enumerate(values)
    )
    workload = write_workload(
        "name: demo\nnamespace: faces\nports:\n  - {name: http, port: 8000}\n"
        "user: {name: workload, uid: 2200}\ndebian: {packages: [coreutils]}\n"
        f"command: [/usr/bin/env]\nenv:\n{env_yaml}\n"
    )
    assert list(workload.env.values()) == values
    launch = tmp_path / "launch"
    launch.write_text(render_files(workload, Settings())["workload/launch"][0])
    result = subprocess.run(
        ["bash", str(launch)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert not marker.exists(), "a catalog value executed inside the rendered script"
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    for index, value in enumerate(values):
        assert seen[f"V{index}"] == value


def test_docker_run_values_override_catalog_defaults(tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.write_text(render_files(load_catalog()["faces"], Settings())["workload/launch"][0])
    bad = subprocess.run(
        ["bash", str(launch), "--check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "FACES_SERVICE": "$(id)"},
        check=False,
    )
    assert bad.returncode == 64
    assert "FACES_SERVICE=\\$\\(id\\) is not one of: smiley color" in bad.stderr


def test_render_is_atomic_on_a_failing_source(tmp_path: Path) -> None:
    settings = Settings().with_(proxy_source=FileSource(path=tmp_path / "missing-proxy"))
    output = tmp_path / "context"
    with pytest.raises(SourceError, match="missing-proxy does not exist"):
        render_build_context(workload=load_catalog()["smiley"], settings=settings, output=output)
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".meshexp")]


def test_render_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    output = tmp_path / "context"
    output.mkdir()
    (output / "keep").write_text("mine")
    with pytest.raises(RenderError, match=r"is not empty; .* --force"):
        render_build_context(workload=load_catalog()["smiley"], settings=Settings(), output=output)
    assert (output / "keep").read_text() == "mine"


def test_force_never_replaces_a_folder_it_did_not_render(tmp_path: Path) -> None:
    """`render --output . --force` in a project folder deleted its .git (issue 32)."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "main.go").write_text("package main\n")
    smiley = load_catalog()["smiley"]
    with pytest.raises(RenderError, match=r"did not write \(no meshexp-context.json\)"):
        render_build_context(workload=smiley, settings=Settings(), output=project, force=True)
    assert (project / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert sorted(p.name for p in project.iterdir()) == [".git", "main.go"]


def test_force_replaces_a_context_it_rendered(tmp_path: Path) -> None:
    output = tmp_path / "context"
    smiley = load_catalog()["smiley"]
    render_build_context(workload=smiley, settings=Settings(), output=output)
    (output / "Dockerfile").write_text("edited by hand\n")
    render_build_context(workload=smiley, settings=Settings(), output=output, force=True)
    assert (output / "Dockerfile").read_text().startswith("# Rendered by meshexp-build")


def test_render_writes_a_complete_context(tmp_path: Path) -> None:
    output = tmp_path / "context"
    result = render_build_context(
        workload=load_catalog()["smiley"], settings=Settings(), output=output
    )
    assert {
        "Dockerfile",
        "scripts/bootstrap",
        "scripts/run-proxy",
        "workload/launch",
        "spire/server.conf",
        "spire/agent.conf",
        "components/certcheck",
        "meshexp-context.json",
    } <= set(result.files) | {"meshexp-context.json"}
    assert os.access(output / "scripts/bootstrap", os.X_OK)
    assert (output / "components/certcheck").read_bytes().startswith(b"\x7fELF")
    assert result.image == "meshexp/smiley:linkerd-2.20"


def test_a_planned_and_fetched_build_is_neither_planned_nor_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is made once per build and passed down, with what was fetched for it."""
    smiley, settings = load_catalog()["smiley"], Settings()
    components = plan.plan_components(smiley, settings)
    fetched = plan.fetch_planned(components, settings)
    calls: list[str] = []
    monkeypatch.setattr(plan, "fetch", lambda *args: calls.append("fetch"))
    monkeypatch.setattr(render, "plan_components", lambda *args: calls.append("plan"))
    result = render.render_build_context(
        workload=smiley,
        settings=settings,
        output=tmp_path / "context",
        components=components,
        fetched=fetched,
    )
    assert calls == []
    assert {c["role"] for c in result.components} == {c.role for c in components}
    assert (tmp_path / "context/components/certcheck").read_bytes().startswith(b"\x7fELF")


def test_templates_share_one_jinja_environment_per_root() -> None:
    assert templates._environment() is templates._environment()


def _from_lines(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]


def test_mirrors_rewrite_every_upstream_reference_and_no_local_one() -> None:
    """Upstream's images are pulled from the mirror; our own (the components image,
    the offline base) stay local; the labels keep the upstream reference, the mirror
    and the digest used."""
    smiley = load_catalog()["smiley"]
    settings = load_settings(
        None,
        {
            "mirrors": (
                "cr.l5d.io=127.0.0.1:5000/l5d",
                "ghcr.io=127.0.0.1:5000/ghcr",
                "docker.io=127.0.0.1:5000/hub",
            )
        },
    )
    digest = "sha256:" + "ab" * 32
    used = {
        "cr.l5d.io/linkerd/proxy:edge-26.6.3": (
            "127.0.0.1:5000/l5d/linkerd/proxy:edge-26.6.3",
            digest,
        )
    }
    files = render_files(
        smiley, settings, components_image="meshexp/components:0123", used_images=used
    )
    dockerfile = files["Dockerfile"][0]
    froms = _from_lines(dockerfile)
    assert "127.0.0.1:5000/l5d/linkerd/proxy:edge-26.6.3" in froms
    assert "127.0.0.1:5000/ghcr/buoyantio/faces-smiley:2.0.0" in froms
    assert "127.0.0.1:5000/hub/library/debian:bookworm-slim" in froms
    assert "meshexp/components:0123" in froms
    assert not [ref for ref in froms if ref.startswith(("cr.l5d.io", "ghcr.io", "debian"))]
    mirror = "127.0.0.1:5000/l5d/linkerd/proxy:edge-26.6.3"
    assert (
        'io.meshexp.source.proxy="image cr.l5d.io/linkerd/proxy:edge-26.6.3@'
        f'{digest} via {mirror} /usr/lib/linkerd/linkerd2-proxy"'
    ) in dockerfile
    offline = load_settings(
        None,
        {
            "offline": True,
            "proxy_file": (str(Path("/bin/true")),),
            "mirrors": ("docker.io=127.0.0.1:5000/hub",),
        },
    )
    assert "meshexp/debian-base:bookworm" in _from_lines(
        render_files(smiley, offline)["Dockerfile"][0]
    )
