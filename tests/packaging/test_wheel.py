"""The wheel carries the templates, catalog and Go sources: installed into a fresh
virtualenv and run from an empty folder, it renders what the checkout renders."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPARED = (
    "Dockerfile",
    "scripts/bootstrap",
    "scripts/run-proxy",
    "workload/launch",
    "spire/server.conf",
    "spire/agent.conf",
)


def test_installed_wheel_renders_like_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    [wheel] = list(wheels.glob("meshexp_build-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(wheel)], check=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    # Same provenance for both renders: a fixed build time, and no git checkout
    # around either (the labels' revision and source come from one).
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed = subprocess.run(
        [
            str(env_dir / "bin" / "meshexp-build"),
            "render",
            "--workload",
            "smiley",
            "--output",
            "ctx",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    checkout = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder.cli",
            "render",
            "--workload",
            "smiley",
            "--output",
            str(tmp_path / "checkout-ctx"),
        ],
        cwd=elsewhere,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checkout.returncode == 0, checkout.stderr
    for relative in COMPARED:
        assert filecmp.cmp(
            empty / "ctx" / relative, tmp_path / "checkout-ctx" / relative, shallow=False
        ), f"{relative} differs between wheel and checkout"
    names = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import builder.core.resources as r; print(r.data_root())",
        ],
        cwd=empty,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages/builder/_data" in names
    # A catalog of one's own, from an empty folder, with nothing but the wheel.
    tool = str(env_dir / "bin" / "meshexp-build")
    for args in (
        ["workloads", "new", "hello", "--dir", "mycat"],
        ["render", "--catalog", "mycat", "--workload", "hello", "--output", "hello-ctx"],
    ):
        done = subprocess.run(
            [tool, *args], cwd=empty, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    dockerfile = (empty / "hello-ctx" / "Dockerfile").read_text()
    assert 'io.meshexp.workload="hello"' in dockerfile
    # The schema the entry names came from the installed tool (pydantic in the wheel's deps).
    assert (
        '"title": "meshexp-build catalog entry"'
        in (empty / "mycat/catalog.schema.json").read_text()
    )
    assert "busybox" in dockerfile
