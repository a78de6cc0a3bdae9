"""The benchmark helpers that compute verdicts must compute them right."""

from __future__ import annotations

from pathlib import Path

from bench.common import Figure, spread
from bench.rebuild import count_rebuilt_layers


def test_spread() -> None:
    stats = spread([3.0, 1.0, 2.0, 10.0])
    assert stats["median"] == 2.5
    assert (stats["min"], stats["max"], stats["n"]) == (1.0, 10.0, 4.0)


def test_count_rebuilt_layers_reads_the_classic_builder_log() -> None:
    log = [
        "Step 1/5 : FROM base",
        " ---> abc",
        "Step 2/5 : RUN apt-get install x",
        " ---> Using cache",
        " ---> def",
        "Step 3/5 : COPY scripts/ /x",
        " ---> Using cache",
        "Step 4/5 : COPY workload/ /opt/workload/",
        " ---> 123",
        "Step 5/5 : LABEL a=b",
        " ---> Running in 9",
        " ---> 456",
    ]
    assert count_rebuilt_layers(log) == 1


def test_figure_verdicts() -> None:
    assert Figure("x", 2.0, "s", "<= 3 s", True).line().startswith("PASS")
    assert Figure("x", 4.0, "s", "<= 3 s", False).line().startswith("FALL SHORT")
    assert Figure("x", 4.0, "s", "reported", None).line().startswith("INFO")


def test_the_soak_scenarios_become_a_table_row_each() -> None:
    from bench.report import scenario_table

    rows = [
        {
            "scenario": "SVID rotation",
            "seconds": 120.0,
            "requests": 600,
            "failures": 0,
            "longest_gap_s": 0.31,
            "detail": "SVIDs renewed: smiley 8",
        },
        {
            "scenario": "API server restarted",
            "seconds": 30.5,
            "requests": 150,
            "failures": 2,
            "longest_gap_s": 4.2,
            "detail": "ready again after 12.0 s",
        },
    ]
    table = scenario_table(rows)
    assert table[1].startswith("| scenario | duration | requests | failed | longest gap |")
    assert table[3:] == [
        "| SVID rotation | 120.0 s | 600 | 0 | 0.31 s | SVIDs renewed: smiley 8 |",
        "| API server restarted | 30.5 s | 150 | 2 | 4.2 s | ready again after 12.0 s |",
    ]
    assert scenario_table([]) == []


def test_the_benchmarks_never_import_the_tests() -> None:
    """bench/ and tests/ share harness/; bench/ importing tests/ would make a cycle
    (tests/ imports bench/ to test its helpers)."""
    root = Path(__file__).parents[2]
    found = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("bench", "harness")
        for path in sorted((root / folder).glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(("from tests.", "from tests import", "import tests"))
    ]
    assert found == []
