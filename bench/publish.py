"""Multi-platform publishing through BuildKit: cold and warm times for linux/amd64 +
linux/arm64 as one image (SBOM and provenance on), each platform's cold time alone
(the arm64/amd64 ratio: arm64 build steps run under qemu), and each platform's
compressed size in the registry.

Cold: BuildKit's state and the helper registry emptied (the Go builds and the
debootstrap roots stay cached: their cold costs are CI's, in the README). Warm:
the same publish again, under another tag.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench import common
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.core.cache import cache_root
from builder.oci.multiplatform import PublishedIndex, publish_platforms
from builder.oci.registry import LocalRegistry, RegistryClient, split_reference
from harness import equipment

PLATFORMS = ("linux/amd64", "linux/arm64")


def settings(platforms: tuple[str, ...], tag: str) -> Settings:
    files = {"linux/amd64": common.proxy(), "linux/arm64": equipment.standin_proxy("arm64")}
    return common.settings().with_(platforms=platforms, proxy_files=files, tag=tag).check()


def forget_builder_state() -> None:
    for folder in ("buildkit", "registry"):
        shutil.rmtree(cache_root() / folder, ignore_errors=True)


def timed_publish(
    registry: str, platforms: tuple[str, ...], tag: str
) -> tuple[float, PublishedIndex]:
    start = time.monotonic()
    [published] = publish_platforms(
        workloads=[find_workload("smiley")],
        settings=settings(platforms, tag),
        registry=registry,
        allow_standin=True,
    )
    return time.monotonic() - start, published


def compressed_mb(client: RegistryClient, published: PublishedIndex) -> dict[str, float]:
    """Each platform's image in the registry: config and layers, as stored (compressed)."""
    _, name, _ = split_reference(published.reference)
    sizes = {}
    for image in published.platforms:
        manifest, _ = client.manifest(name, image.digest)
        parts = [manifest["config"], *manifest["layers"]]
        sizes[image.platform] = sum(int(part["size"]) for part in parts) / 1e6
    return sizes


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="meshexp-bench-publish-") as scratch,
        LocalRegistry(Path(scratch)) as registry,
    ):
        alone = {}
        for platform in PLATFORMS:
            forget_builder_state()
            alone[platform], _ = timed_publish(
                registry.address, (platform,), f"alone-{platform[6:]}"
            )
        forget_builder_state()
        cold, published = timed_publish(registry.address, PLATFORMS, "cold")
        warm, _ = timed_publish(registry.address, PLATFORMS, "warm")
        sizes = compressed_mb(RegistryClient(registry.address), published)
    ratio = alone["linux/arm64"] / alone["linux/amd64"]
    figures = [
        common.Figure(
            "publish linux/amd64 + linux/arm64, cold (SBOM, provenance)",
            cold,
            "s",
            "reported",
            None,
        ),
        common.Figure("publish linux/amd64 + linux/arm64, warm", warm, "s", "reported", None),
        common.Figure("linux/amd64 alone, cold", alone["linux/amd64"], "s", "reported", None),
        common.Figure(
            "linux/arm64 alone, cold (build steps under qemu)",
            alone["linux/arm64"],
            "s",
            "reported",
            None,
        ),
        common.Figure("arm64 / amd64 cold time ratio", ratio, "x", "reported", None),
        *(
            common.Figure(f"{platform} compressed in the registry", size, "MB", "reported", None)
            for platform, size in sizes.items()
        ),
    ]
    common.save(
        "publish",
        figures,
        {"cold_s": cold, "warm_s": warm, "alone_s": alone, "ratio": ratio, "compressed_mb": sizes},
    )


if __name__ == "__main__":
    main()
