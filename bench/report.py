"""Write bench/REPORT.md from bench/results/*.json (the figures of the last real run)."""

from __future__ import annotations

import json

from bench import common

ORDER = (
    "time_to_ready",
    "rebuild",
    "image_size",
    "spire_build",
    "catalog",
    "memory",
    "keeper",
    "lab",
    "publish",
    "from_image",
    "walkthrough",
    "registration",
    "registration_service",
    "soak",
)
TITLES = {
    "time_to_ready": "1. Time to ready",
    "rebuild": "2. Rebuild after a workload change",
    "image_size": "3. Image size",
    "spire_build": "3b. SPIRE with the configured plugins only, against the full build",
    "catalog": "4. The catalog (smiley, color, face)",
    "memory": "5. Memory",
    "keeper": "6. The status keeper (Ready true to the container)",
    "lab": "7. The mesh lab (a real Linkerd control plane, no nodes)",
    "publish": "8. Multi-platform publishing through BuildKit (linux/amd64 + linux/arm64)",
    "from_image": "8b. Application images (image --from): the mesh layer and time to ready",
    "walkthrough": "9. The walk-through on a kind cluster (every part real, offline)",
    "registration": "10. Registration: docker run, and it joins the mesh",
    "registration_service": "10b. Registration by identity: heartbeats of 50 and 500 workloads",
    "soak": "11. Nothing lost over time: rotations and restarts under load (make soak)",
}
NOTES_FILE = common.BENCH / "NOTES.md"


def scenario_table(rows: list[dict[str, object]]) -> list[str]:
    """A soak's scenarios: how long each ran, its calls, failures and longest gap."""
    if not rows:
        return []
    lines = [
        "",
        "| scenario | duration | requests | failed | longest gap | what happened |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['seconds']} s | {row['requests']} | {row['failures']} "
            f"| {row['longest_gap_s']} s | {row['detail']} |"
        )
    return lines


def main() -> None:
    lines = [
        "# meshexp-build benchmarks",
        "",
        "Written by `make bench` from `bench/results/*.json`; every figure below comes "
        "from one run on the machine it names. Targets are the issue's; a figure that "
        "misses one says so, and `bench/NOTES.md` says why and what would close the gap.",
        "",
    ]
    for name in ORDER:
        path = common.RESULTS / f"{name}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        machine = document["machine"]
        lines += [
            f"## {TITLES[name]}",
            "",
            f"Run {document['date']} on {machine['cpus']} CPUs, "
            f"{machine['memory_kib'] // 1024} MiB, Docker {machine['docker']} "
            f"({machine['storage_driver']}), {machine['go']}, commit {machine['commit']}, "
            f"proxy: {machine.get('proxy', 'stand-in')}.",
            "",
            "| figure | value | target | verdict |",
            "|---|---|---|---|",
        ]
        for figure in document["figures"]:
            verdict = {True: "PASS", False: "FALL SHORT", None: "—"}[figure["met"]]
            lines.append(
                f"| {figure['name'].strip()} | {figure['value']:.2f} {figure['unit']} "
                f"| {figure['target']} | {verdict} |"
            )
        for label, stats in (document["data"].get("stats") or {}).items():
            lines.append(
                f"| {label}: min / median / p90 / max over {stats['n']:.0f} | "
                f"{stats['min']:.2f} / {stats['median']:.2f} / {stats['p90']:.2f} / "
                f"{stats['max']:.2f} s | reported | — |"
            )
        lines += scenario_table(document["data"].get("scenarios") or [])
        image = common.RESULTS / f"{name}.png"
        if image.is_file():
            lines += ["", f"![{name}](results/{name}.png)"]
        lines.append("")
    if NOTES_FILE.is_file():
        lines += ["## Notes on the figures", "", NOTES_FILE.read_text().strip(), ""]
    (common.BENCH / "REPORT.md").write_text("\n".join(lines))
    print(f"wrote {common.BENCH / 'REPORT.md'}")


if __name__ == "__main__":
    main()
