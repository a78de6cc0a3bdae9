"""Every benchmark module imports (`make bench` runs them all in one process; a name
moved elsewhere in builder/ would end the run at its import)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py")))
def test_the_benchmark_imports(module: str) -> None:
    loaded = importlib.import_module(f"bench.{module}")
    if module not in {"__init__", "common"}:
        assert callable(getattr(loaded, "main", None)), f"bench/{module}.py has no main()"
