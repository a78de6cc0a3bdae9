"""The one process runner: output, and errors that name the command and end with what it
said last, cut to size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from builder.cluster.providers import ProviderError
from builder.core import process

PYTHON = sys.executable


def test_the_output_is_stdout_and_stdin_is_given() -> None:
    said = process.run([PYTHON, "-c", "import sys; print(sys.stdin.read().upper())"], stdin="hi")
    assert said == "HI\n"


def test_a_failure_names_the_command_its_status_and_its_last_lines() -> None:
    chatty = "import sys\nfor n in range(100): print(f'line {n}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(process.CommandFailed) as failed:
        process.run([PYTHON, "-c", chatty])
    error = failed.value
    assert error.returncode == 3
    head, *said = str(error).splitlines()
    # the script's lines are words of the command: they stay on the first line, cut
    assert head == f"`{Path(PYTHON).name} -c {' '.join(chatty.split())[:37]}...` failed (3):"
    assert said == [f"line {n}" for n in range(100 - process.TAIL_LINES, 100)]


def test_stdout_stands_in_where_stderr_is_empty_and_is_kept_on_the_error() -> None:
    with pytest.raises(process.CommandFailed) as failed:
        process.run([PYTHON, "-c", "print('the report'); raise SystemExit(1)"], what="report")
    assert str(failed.value) == "report failed (1):\nthe report"
    assert failed.value.output == "the report\n"


def test_a_flood_on_one_line_is_cut() -> None:
    flood = f"import sys; sys.stderr.write('x' * {process.TAIL_CHARS * 10}); sys.exit(1)"
    with pytest.raises(process.CommandFailed) as failed:
        process.run([PYTHON, "-c", flood], what="flood")
    assert len(str(failed.value)) < process.TAIL_CHARS + 40


def test_a_missing_program_and_a_time_limit_are_errors_not_tracebacks(tmp_path: Path) -> None:
    with pytest.raises(process.CommandFailed, match="is not there"):
        process.run([tmp_path / "nothing-here"], what="nothing")
    with pytest.raises(process.CommandFailed, match="did not end within 0s"):
        process.run([PYTHON, "-c", "import time; time.sleep(30)"], what="sleeper", timeout=0.2)


def test_the_caller_names_the_error_and_so_keeps_its_exit_code() -> None:
    with pytest.raises(ProviderError, match=r"^kind: create failed \(2\)") as failed:
        process.run([PYTHON, "-c", "raise SystemExit(2)"], what="kind: create", error=ProviderError)
    assert failed.value.exit_code == ProviderError.exit_code


class Removing:
    """A container the engine is removing already (a `docker rm -f` elsewhere): removal
    answers 409, and the container is gone after `polls` inspections."""

    def __init__(self, polls: int, explanation: str) -> None:
        self.polls, self.explanation = polls, explanation

    def remove(self, force: bool) -> None:
        import docker.errors
        import requests

        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError("409 Client Error", response, self.explanation)

    def inspect(self, name: str) -> dict[str, str]:
        self.polls -= 1
        return {"Id": name} if self.polls > 0 else {}


def engine_with(monkeypatch: pytest.MonkeyPatch, container: Removing) -> None:
    from types import SimpleNamespace

    from builder.engine import docker_engine

    fake = SimpleNamespace(containers=SimpleNamespace(get=lambda name: container))
    monkeypatch.setattr(docker_engine, "client", lambda: fake)
    monkeypatch.setattr(docker_engine, "inspect_if_exists", container.inspect)
    monkeypatch.setattr(docker_engine.wait.time, "sleep", lambda seconds: None)


def test_a_removal_already_in_progress_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.engine import docker_engine

    removing = Removing(3, "removal of container node is already in progress")
    engine_with(monkeypatch, removing)
    assert docker_engine.remove_container("node") is True
    assert removing.polls == 0


def test_another_refusal_to_remove_is_one_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.core.errors import EngineError
    from builder.engine import docker_engine

    engine_with(monkeypatch, Removing(3, "container is paused"))
    with pytest.raises(EngineError, match=r"^docker could not remove node: container is paused$"):
        docker_engine.remove_container("node")


def test_a_program_in_a_deep_folder_is_named_by_its_name() -> None:
    deep = "/root/.cache/meshexp-build/go/5906e2abcf0144d213c4621f/kind"
    assert process.shown([deep, "load", "docker-image", "x" * 80, "--name", "c"]) == (
        f"`kind load docker-image {'x' * 37}... ...`"
    )
