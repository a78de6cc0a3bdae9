"""A fault in the middle of the walk-through, as a user meets it (marker e2e): `check --e2e
--cluster kind`, offline with the test equipment, and the cluster's node container removed
(`docker rm -f`, from outside the run) while kind loads images into it. The run ends with
one line naming the step and the cause and exit 5, never a traceback, and it leaves no
container and no network behind."""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import docker.errors
import pytest
from click.testing import CliRunner

from builder.check.walkthrough.steps import E2EConfig
from builder.cli import main
from harness import equipment
from tests.conftest import need
from tests.integration.conftest import EngineState, clean_up_after

pytestmark = pytest.mark.e2e
LOADING = ("load", "docker-image")


def loading_pids() -> list[int]:
    """The processes running `kind load docker-image` (read from /proc)."""
    found = []
    for folder in Path("/proc").iterdir():
        if not folder.name.isdigit():
            continue
        try:
            words = (folder / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [word.decode(errors="replace") for word in words]
        if all(word in text for word in LOADING) and any(w.endswith("kind") for w in text):
            found.append(int(folder.name))
    return found


def remove_node_while_loading(
    client: docker.DockerClient, node: str, stop: threading.Event, removed: list[str]
) -> None:
    """Once `kind load docker-image` runs, `docker rm -f` the node, as a user would."""
    while not stop.wait(0.2):
        if loading_pids():
            try:
                client.containers.get(node).remove(force=True)
            except docker.errors.NotFound:
                continue
            removed.append(node)
            return


def test_the_node_removed_while_images_load_ends_in_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, missing = equipment.kind_e2e_inputs()
    need(not missing, "test equipment: " + ", ".join(missing))
    monkeypatch.chdir(tmp_path)  # the walk-through's out/e2e goes here
    client = docker.from_env(timeout=300)
    node = f"{E2EConfig().cluster}-control-plane"
    need(
        not client.containers.list(all=True, filters={"name": f"^{node}$"}),
        f"no kind cluster named {E2EConfig().cluster} on this engine (delete it first)",
    )
    before = EngineState.read(client)
    stop, removed = threading.Event(), []
    watcher = threading.Thread(
        target=remove_node_while_loading, args=(client, node, stop, removed), daemon=True
    )
    watcher.start()
    try:
        result = CliRunner().invoke(
            main,
            [
                "check",
                "--e2e",
                "--cluster",
                "kind",
                "--linkerd-programs",
                str(equipment.CONTROL_PLANE),
                "--faces-programs",
                str(equipment.REAL_FACES),
                "--proxy-file",
                str(inputs["linkerd_programs"].proxy),
            ],
        )
        after = EngineState.read(client)
    finally:
        stop.set()
        watcher.join(timeout=30)
        left = clean_up_after(client, before)
    assert removed == [node], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 5, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    print(errors[0])  # what a user reads (shown with -s)
    assert "e2e stopped at step 2/" in errors[0], result.output
    assert "(load the images into the cluster): " in errors[0], result.output
    assert "cleanup" not in errors[0], result.output
    assert "Traceback" not in result.output
    # Nothing of the run is left: no container, no network (kind's own included).
    assert after.containers == before.containers
    assert after.networks == before.networks
    assert left == []
