"""The walk-through on a kind cluster, every part real and offline (the e2e's own run):
cluster create to node Ready, Linkerd install to its control plane Available, the
external workloads' `docker run` to face's first meshed answer, and the whole
walk-through, against the walk-through's own anchor of "about 10 minutes by hand".
The parts (node image, kind, Helm, Linkerd's and Faces' images) are built first, as
`make test` does, so the figures are the walk-through's and not the builds'.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from bench import common
from builder.check.walkthrough.kind import kind_e2e_config
from builder.check.walkthrough.run import run_e2e
from builder.check.walkthrough.steps import E2EConfig
from builder.check.walkthrough.walk import CLUSTER_READY, FIRST_ANSWER, LINKERD_AVAILABLE, WHOLE
from harness import equipment

RUNS = 3
BY_HAND_S = 600.0  # the walk-through's "about 10 minutes by hand"


def main() -> None:
    inputs, missing = equipment.kind_e2e_inputs()
    if missing:
        raise SystemExit("the walk-through benchmark needs: " + ", ".join(missing))
    real = {name: str(equipment.REAL_FACES / name) for name in ("smiley", "color")}
    settings = common.settings(binaries={name: Path(path) for name, path in real.items()})
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-e2e-") as scratch:
        for run in range(RUNS):
            name = f"meshexp-bench-{uuid.uuid4().hex[:6]}"
            base = E2EConfig(cluster=name, network=name, certs=Path(scratch) / f"{run}" / "certs")
            config = kind_e2e_config(base, **inputs)
            result = run_e2e(config=config, settings=settings)
            for label, seconds in result.timings.items():
                samples.setdefault(label, []).append(seconds)
    stats = {label: common.spread(values) for label, values in samples.items()}
    whole = stats[WHOLE]["median"]
    figures = [
        common.Figure(
            f"{WHOLE}, median of {RUNS}",
            whole,
            "s",
            f"< {BY_HAND_S:.0f} s (the walk-through's 'about 10 minutes by hand')",
            whole < BY_HAND_S,
        ),
        *(
            common.Figure(
                f"{label}, median of {RUNS}", stats[label]["median"], "s", "reported", None
            )
            for label in (CLUSTER_READY, LINKERD_AVAILABLE, FIRST_ANSWER)
        ),
    ]
    common.save("walkthrough", figures, {"samples_s": samples, "stats": stats})


if __name__ == "__main__":
    main()
