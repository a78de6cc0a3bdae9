"""The CLI in-process: exit codes and messages a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from builder.cli import main
from builder.engine import docker_engine


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_workloads_json_lists_the_catalog(run) -> None:
    result = run("workloads", "--output", "json")
    assert result.exit_code == 0
    names = {item["name"] for item in json.loads(result.output)}
    assert {"smiley", "color", "face", "faces", "static-web"} <= names


def test_render_then_the_context_is_complete(run, tmp_path: Path) -> None:
    result = run("render", "--workload", "color", "--output", str(tmp_path / "ctx"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["image"] == "meshexp/color:linkerd-2.20"
    assert (tmp_path / "ctx/Dockerfile").is_file()


def test_render_unknown_workload_exits_1(run, tmp_path: Path) -> None:
    result = run("render", "--workload", "nope", "--output", str(tmp_path / "ctx"))
    assert result.exit_code == 1
    assert "no workload 'nope' in the catalog; known:" in result.output
    assert not (tmp_path / "ctx").exists()


def test_usage_error_exits_2(run) -> None:
    assert run("render", "--workload", "smiley").exit_code == 2
    result = run("image")
    assert result.exit_code == 2
    assert "give --workload NAME (repeatable), --from IMAGE or --all" in result.output


def test_offline_without_proxy_file(run, tmp_path: Path) -> None:
    result = run("render", "--workload", "smiley", "--offline", "--output", str(tmp_path / "c"))
    assert result.exit_code == 1
    assert "--proxy-file PATH" in result.output


def test_manifests_yaml_and_bad_ip(run) -> None:
    result = run("manifests", "--workload", "smiley", "--ip", "172.18.0.9")
    assert result.exit_code == 0
    documents = [doc for doc in yaml.safe_load_all(result.output) if doc]
    assert [doc["kind"] for doc in documents] == ["ExternalWorkload", "Service"]
    assert "--subresource status" in result.output
    bad = run("manifests", "--workload", "smiley", "--ip", "$(id)")
    assert bad.exit_code == 1
    assert "'$(id)' is not an IP address" in bad.output


def test_certs_twice_needs_force(run, tmp_path: Path) -> None:
    assert run("certs", "--output", str(tmp_path / "c")).exit_code == 0
    again = run("certs", "--output", str(tmp_path / "c"))
    assert again.exit_code == 1
    assert "add --force" in again.output


def test_engine_unavailable_exits_3_naming_the_socket(run, monkeypatch) -> None:
    monkeypatch.setattr(docker_engine, "_CLIENT", [])
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = run("image", "--workload", "smiley", env=env)
    assert result.exit_code == 3
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in result.output
    assert "ensure-docker.sh" in result.output
    doctor = run("doctor", env=env)
    assert doctor.exit_code == 1
    assert "FAIL engine" in doctor.output


def test_settings_file_in_current_folder_is_used(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshexp.yaml").write_text("image_name: example.org/mesh/{workload}\n")
    result = run("render", "--workload", "smiley", "--output", "ctx", "--json")
    assert json.loads(result.output)["image"] == "example.org/mesh/smiley:linkerd-2.20"


@pytest.mark.parametrize(
    "args",
    [
        ["workloads", "-o", "json"],
        ["render", "--workload", "smiley", "--output", "{tmp}/ctx", "--json"],
        ["certs", "--output", "{tmp}/certs", "--json"],
        ["manifests", "--workload", "smiley", "--ip", "172.18.0.5", "-o", "json"],
        ["doctor", "-o", "json"],
    ],
    ids=lambda args: args[0],
)
def test_json_output_is_one_document_on_stdout(args: list[str], tmp_path: Path) -> None:
    """Machine-readable output is pure: json.loads takes stdout whole; human lines go to stderr."""
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    # doctor exits 1 where a build could not succeed; its JSON still stands alone.
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    assert document


def test_run_watch_with_json_output_is_a_usage_error(run, tmp_path: Path) -> None:
    """--watch prints lines as Ready changes; it was dropped silently with -o json."""
    (tmp_path / "certs").mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    result = run(
        "run", "--workload", "smiley", "--certs", str(tmp_path / "certs"),
        "--kubeconfig", str(kubeconfig), "--apply", "--watch", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--watch prints a line each time Ready changes" in result.output


def test_e2e_on_kind_names_the_folders_it_needs(run, tmp_path: Path) -> None:
    (tmp_path / "l5d").mkdir()
    (tmp_path / "faces").mkdir()
    (tmp_path / "proxy").write_text("")
    # One of the three offline inputs is not the offline path: all three are named.
    result = run("check", "--e2e", "--cluster", "kind", "--linkerd-programs", str(tmp_path))
    assert result.exit_code == 2
    assert "--linkerd-programs DIR, --faces-programs DIR and --proxy-file FILE" in result.output
    # The offline path is kind's: on k3d the inputs are refused, not ignored.
    result = run("check", "--e2e", "--proxy-file", str(tmp_path / "proxy"))
    assert result.exit_code == 2
    assert "the offline walk-through runs on kind" in result.output
    result = run(
        "check",
        "--e2e",
        "--cluster",
        "kind",
        "--linkerd-programs",
        str(tmp_path / "l5d"),
        "--faces-programs",
        str(tmp_path / "faces"),
        "--proxy-file",
        str(tmp_path / "proxy"),
    )
    assert result.exit_code == 5
    assert f"missing: {tmp_path / 'l5d' / 'controller'}" in result.output
    assert str(tmp_path / "faces" / "faces-chart-2.0.0.tgz") in result.output


def test_mirrors_for_the_walkthrough_go_where_they_can_reach_the_nodes(run, tmp_path: Path) -> None:
    """The nodes are told of mirrors on kind; k3d's would pull upstream's regardless, and
    the offline walk-through pulls nothing: each is refused, naming why."""
    mirror = ("--mirror", "cr.l5d.io=registry.corp:5000/l5d")
    result = run("check", "--e2e", *mirror)
    assert result.exit_code == 2
    assert "mirrors reach the walk-through's cluster on kind" in result.output
    for name in ("l5d", "faces"):
        (tmp_path / name).mkdir()
    (tmp_path / "proxy").write_text("")
    offline = ("--linkerd-programs", str(tmp_path / "l5d"), "--faces-programs")
    offline += (str(tmp_path / "faces"), "--proxy-file", str(tmp_path / "proxy"))
    result = run("check", "--e2e", "--cluster", "kind", *offline, *mirror)
    assert result.exit_code == 2
    assert "the offline one" in result.output
    assert "pulls nothing" in result.output
    result = run("check", "--e2e", "--cluster", "kind", "--mirror", "ghcr.io/buoyantio=r.corp")
    assert result.exit_code == 1
    assert "a cluster's nodes mirror whole registries; give ghcr.io=MIRROR" in result.output


def test_an_unknown_cluster_provider_is_a_usage_error(run) -> None:
    result = run("check", "--e2e", "--cluster", "minikube")
    assert result.exit_code == 2
    assert "'k3d', 'kind'" in result.output


def test_cluster_down_without_a_prepared_folder_says_which_dir(run, tmp_path: Path) -> None:
    result = run("cluster", "down", "--dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "no kind cluster was prepared in" in result.output


def test_the_walkthroughs_workloads_take_the_linkerd_clis_release_unless_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control plane is what the linkerd CLI on PATH installs: the external workloads'
    proxy is of its release (the real CLI, edge-26.8.3), unless the flag or the settings
    file names one; a CLI whose version cannot be read is one line."""
    from builder.cli.check import walkthrough_release
    from builder.config.settings import load_settings
    from builder.core.errors import CheckError
    from harness.equipment import CONTROL_PLANE
    from tests.conftest import need

    need((CONTROL_PLANE / "linkerd").is_file(), f"the linkerd CLI in {CONTROL_PLANE}")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "linkerd").symlink_to(CONTROL_PLANE / "linkerd")
    monkeypatch.setenv("PATH", str(tools))
    assert walkthrough_release(load_settings(None, {})).linkerd_version == "edge-26.8.3"
    named = load_settings(None, {"linkerd_version": "2.19"})
    assert walkthrough_release(named).linkerd_version == "2.19"
    (tmp_path / "meshexp.yaml").write_text("linkerd_version: edge-25.10.7\n")
    from_file = load_settings(tmp_path / "meshexp.yaml", {})
    assert walkthrough_release(from_file).linkerd_version == "edge-25.10.7"
    (tools / "linkerd").unlink()
    (tools / "linkerd").write_text("#!/bin/sh\necho 'Client version: unavailable'\n")
    (tools / "linkerd").chmod(0o755)
    with pytest.raises(CheckError, match=r"^e2e: `.*linkerd version --client --short` said"):
        walkthrough_release(load_settings(None, {}))
