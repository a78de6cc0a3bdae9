"""The catalog: smiley, color and face built together against three separate builds.

Wall time: one `image` run for the three (shared layers built once, Go
components prepared in parallel) against three builds that each start from an
empty layer cache. Disk: unique bytes of the three images (shared layers
counted once) against three times one image.
"""

from __future__ import annotations

import time

from bench import common
from builder.build.image import build_workload_image, prefetch_components
from builder.config.catalog import find_workload
from builder.engine import docker_engine

TRIO = ("smiley", "color", "face")
TARGET_UNIQUE = 1.2


def forget_layers(settings_name: str) -> None:
    """Remove the bench's trio images and the dangling build cache (base image kept)."""
    client = docker_engine.client()
    for image in client.images.list(name=settings_name):
        client.images.remove(image.id, force=True)
    client.images.prune(filters={"dangling": True})


def layer_sizes(reference: str) -> dict[str, int]:
    """diff id -> bytes for each layer of an image."""
    attrs = docker_engine.image_attrs(reference)
    diff_ids = attrs["RootFS"]["Layers"]
    sizes = [
        item["Size"]
        for item in reversed(docker_engine.image_history(reference))
        if not (item.get("CreatedBy") or "").startswith("/bin/sh -c #(nop)") or item["Size"] > 0
    ]
    return dict(zip(diff_ids, sizes[-len(diff_ids) :], strict=False))


def main() -> None:
    name = "meshexp-bench/catalog-{workload}"
    settings = common.settings(image_name=name)
    workloads = [find_workload(item) for item in TRIO]
    prefetch_components(workloads, settings)  # both runs start with the Go builds cached

    # Both sides start cold for layers: separate builds share nothing (each
    # without the layer cache); together, the first builds everything and the
    # other two reuse its shared layers, as `image --workload a --workload b ...`.
    separate = 0.0
    for workload in workloads:
        start = time.monotonic()
        build_workload_image(workload=workload, settings=settings, nocache=True)
        separate += time.monotonic() - start
    forget_layers("meshexp-bench/catalog-*")
    start = time.monotonic()
    prefetch_components(workloads, settings)
    references = [
        build_workload_image(workload=w, settings=settings, nocache=index == 0).reference
        for index, w in enumerate(workloads)
    ]
    together = time.monotonic() - start

    per_image = {ref: layer_sizes(ref) for ref in references}
    unique = sum(
        {diff: size for sizes in per_image.values() for diff, size in sizes.items()}.values()
    )
    one = sum(per_image[references[0]].values())
    ratio = unique / one
    figures = [
        common.Figure(
            "unique bytes of the trio / one image",
            ratio,
            "x",
            f"<= {TARGET_UNIQUE}",
            ratio <= TARGET_UNIQUE,
        ),
        common.Figure(
            "unique bytes of the trio / three images",
            unique / (3 * one) * 100,
            "%",
            "reported",
            None,
        ),
        common.Figure("trio built together", together, "s", "reported", None),
        common.Figure("three separate builds", separate, "s", "reported", None),
        common.Figure(
            "together / separate wall time", together / separate * 100, "%", "reported", None
        ),
    ]
    common.save(
        "catalog",
        figures,
        {
            "together_s": together,
            "separate_s": separate,
            "unique_bytes": unique,
            "one_image_bytes": one,
        },
    )


if __name__ == "__main__":
    main()
