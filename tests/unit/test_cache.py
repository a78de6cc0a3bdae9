"""The component cache under concurrent builds: several processes at once, one build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Each process waits for the start file, builds the same local Go package into the
# same (empty) cache, and reports what it saw.
BUILDER = """
import json, sys, time
from pathlib import Path
from builder.build.gobuild import cached_go_binary
from builder.config.sources import GoSource
from builder.core.progress import Progress
from builder.core.resources import go_dir
start = Path(sys.argv[1])
while not start.exists():
    time.sleep(0.01)
said = []
source = GoSource(package="./cmd/certcheck", local=go_dir())
path = cached_go_binary(source, "amd64", Progress(said.append))
print(json.dumps({"path": str(path), "said": said}))
"""


def test_four_builds_at_once_build_once_and_share_one_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    start = tmp_path / "start"
    env = dict(os.environ, MESHEXP_CACHE_DIR=str(cache))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(start)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(4)
    ]
    start.touch()
    reports = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0
        reports.append(json.loads(out))
    paths = {report["path"] for report in reports}
    assert len(paths) == 1  # one entry, the same for all
    built = [
        r for r in reports if any(line.endswith("(cached afterwards) ...") for line in r["said"])
    ]
    assert len(built) == 1, [r["said"] for r in reports]  # the build ran once
    entries = [p for p in (cache / "go").rglob("*") if p.is_file()]
    assert entries == [Path(paths.pop())]  # nothing else: no temporary, no lock file
    assert entries[0].read_bytes().startswith(b"\x7fELF")
    assert os.access(entries[0], os.X_OK)


def test_an_entry_of_several_files_is_built_once_and_a_failed_build_leaves_none(
    tmp_path: Path, monkeypatch
) -> None:
    import pytest

    from builder.core.cache import cached_files

    monkeypatch.setenv("MESHEXP_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "entry"
    builds: list[Path] = []

    def half_then_fail(scratch: Path) -> None:
        (scratch / "one").write_text("1")
        raise OSError("the build broke after one of two files")

    with pytest.raises(OSError, match="broke"):
        cached_files(folder, ["one", "two"], "pair", half_then_fail)
    assert [p.name for p in folder.iterdir()] == []  # no half entry, no scratch

    def build(scratch: Path) -> None:
        builds.append(scratch)
        for name in ("one", "two"):
            (scratch / name).write_text(name)

    first = cached_files(folder, ["one", "two"], "pair", build)
    again = cached_files(folder, ["one", "two"], "pair", build)
    assert first == again == [folder / "one", folder / "two"]
    assert [p.read_text() for p in first] == ["one", "two"]
    assert len(builds) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["one", "two"]
