"""Image size: ours against a demo-equivalent variant built in the same run.

The variant has the same components and base, but the original demo's
package set (iptables, wget, iproute2, jq, curl, gcc, ca-certificates,
systemd, dnsutils, procps) instead of ours (iptables, iproute2), and keeps
them all: the system stage's purge of what no process loads is left out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import common
from builder.build.image import build_workload_image
from builder.build.render import SYSTEM_PACKAGES, render_build_context
from builder.config.catalog import find_workload
from builder.engine import docker_engine

DEMO_PACKAGES = (
    "iptables",
    "wget",
    "iproute2",
    "jq",
    "curl",
    "gcc",
    "ca-certificates",
    "systemd",
    "dnsutils",
    "procps",
)
TARGET_RATIO = 0.5
TARGET_DEMO_MB = 200
TARGET_PRODUCTION_MB = 100
SLIM_STEP = "RUN /tmp/slim-system && rm /tmp/slim-system"


def layer_label(step: str) -> str:
    """A short name for a layer from the instruction that made it."""
    if "apt-get" in step:
        return "packages"
    if "COPY dir:" in step and step.rstrip().endswith(" in /"):
        return "system"  # the system stage's root, one layer
    if "groupadd" in step:
        return "users"
    if "COPY file" in step:
        return "binary"
    if "COPY" in step:
        return "files"
    return "base" if not step.strip() else step.split()[0][:10]


def layers(reference: str) -> list[dict[str, object]]:
    return [
        {
            "size_mb": round(item["Size"] / 1e6, 2),
            "step": (item.get("CreatedBy") or "").replace("/bin/sh -c #(nop) ", "")[:90],
        }
        for item in docker_engine.image_history(reference)
        if item["Size"] > 0
    ]


def build(reference: str, packages: tuple[str, ...], scratch: Path, slim: bool = True) -> int:
    settings = common.settings()
    context = render_build_context(
        workload=find_workload("smiley"),
        settings=settings,
        output=scratch / reference.replace("/", "_").replace(":", "_"),
    )
    dockerfile = context.output / "Dockerfile"
    text = dockerfile.read_text()
    ours = " ".join(SYSTEM_PACKAGES)
    assert ours in text
    text = text.replace(ours, " ".join(packages))
    if not slim:
        assert SLIM_STEP in text
        text = text.replace(SLIM_STEP, "RUN rm /tmp/slim-system")
    dockerfile.write_text(text)
    docker_engine.build_image(context=context.output, tag=reference, platform=settings.platform)
    return int(docker_engine.image_attrs(reference)["Size"])


def plot(data: dict[str, list[dict[str, object]]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for row, items in enumerate(data.values()):
        left = 0.0
        for item in items:
            size = float(item["size_mb"])  # type: ignore[arg-type]
            ax.barh(row, size, left=left, edgecolor="white")
            if size > 25:
                ax.text(
                    left + size / 2,
                    row,
                    f"{layer_label(str(item['step']))} {size:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
            left += size
    ax.set_yticks(range(len(data)), list(data))
    ax.set_xlabel("MB (each segment one layer)")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-") as scratch:
        ours = build("meshexp-bench/size:ours", SYSTEM_PACKAGES, Path(scratch))
        demo = build("meshexp-bench/size:demo-packages", DEMO_PACKAGES, Path(scratch), slim=False)
    production = build_workload_image(
        workload=find_workload("smiley"),
        settings=common.settings(topology="production", image_name="meshexp-bench/prod-{workload}"),
    ).size_bytes
    data = {
        "ours": layers("meshexp-bench/size:ours"),
        "demo-equivalent": layers("meshexp-bench/size:demo-packages"),
    }
    ratio = ours / demo
    figures = [
        common.Figure(
            "our image / demo-equivalent image",
            ratio * 100,
            "%",
            f"<= {TARGET_RATIO * 100:.0f} %",
            ratio <= TARGET_RATIO,
        ),
        common.Figure(
            "our image (demo topology)",
            ours / 1e6,
            "MB",
            f"<= {TARGET_DEMO_MB} MB",
            ours / 1e6 <= TARGET_DEMO_MB,
        ),
        common.Figure("demo-equivalent image", demo / 1e6, "MB", "reported", None),
        common.Figure(
            "our production-topology image (agent only)",
            production / 1e6,
            "MB",
            f"<= {TARGET_PRODUCTION_MB} MB",
            production / 1e6 <= TARGET_PRODUCTION_MB,
        ),
        common.Figure(
            "production-topology image / demo-equivalent",
            production / demo * 100,
            "%",
            "reported",
            None,
        ),
    ]
    plot(data, common.RESULTS / "image_size.png")
    common.save(
        "image_size",
        figures,
        {"ours_bytes": ours, "demo_bytes": demo, "layers": data, "demo_packages": DEMO_PACKAGES},
    )


if __name__ == "__main__":
    main()
