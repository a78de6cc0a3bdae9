"""The benchmark helpers that compute verdicts must compute them right."""

from __future__ import annotations

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
