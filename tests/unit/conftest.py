from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.catalog import load_workload_file
from builder.config.models import Workload

SMILEY_LIKE = """\
name: {name}
namespace: faces
ports:
  - {{name: http, port: 8000}}
user: {{name: workload, uid: 2200}}
debian: {{packages: [coreutils]}}
command: [/usr/bin/env]
env:
{env}
"""


@pytest.fixture
def write_workload(tmp_path: Path):
    """Write a catalog file into a fresh folder and load it."""

    def write(text: str, name: str = "demo") -> Workload:
        folder = tmp_path / "images"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(text)
        return load_workload_file(path)

    return write
