"""Application images (`image --from`): the mesh layer's size and the time to ready.

Three applications unlike our base (harness/apps.py: Python on Debian, a musl program
with nothing else, FROM scratch), each meshed with the real proxy:

- the mesh layer: what the meshed image adds to the application's, per topology (the
  demo carries the SPIRE server too; production only the agent), uncompressed in the
  engine; and per platform (linux/amd64, linux/arm64) as a registry stores it
  (compressed), from `publish --from` of the scratch application's index;
- time to ready: `docker start` to the proxy's /ready answering 200, demo topology, on
  each base (the same measure as bench/time_to_ready.py).

Targets (issue 34): the production layer at most 70 MB, ready within 3 s (median).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import common, time_to_ready
from builder.build.base_image import build_base
from builder.build.from_image import from_entry
from builder.build.image import build_workload_image
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.engine import docker_engine
from builder.oci.multiplatform import publish_platforms
from builder.oci.registry import LocalRegistry, RegistryClient, split_reference
from harness import apps, equipment

STARTS = 5
LAYER_TARGET_MB = 70.0
READY_TARGET = 3.0
PLATFORMS = ("linux/amd64", "linux/arm64")
# No real arm64 proxy exists here: that platform carries the stand-in (smaller).
STANDIN = {"linux/arm64": "; the stand-in proxy"}


def mesh_mb(meshed: str, application: str) -> float:
    """What `meshed` adds to `application`, uncompressed, in MB."""
    sizes = [int(docker_engine.image_attrs(ref)["Size"]) for ref in (meshed, application)]
    return (sizes[0] - sizes[1]) / 1e6


def layer_sizes(made: dict[str, str]) -> dict[str, dict[str, float]]:
    """MB the mesh adds to each application, per topology."""
    sizes: dict[str, dict[str, float]] = {}
    for topology in ("demo", "production"):
        settings = common.settings(
            topology=topology, image_name=f"meshexp-bench/{topology}-{{workload}}"
        )
        sizes[topology] = {}
        for app, reference in made.items():
            built = build_workload_image(
                workload=from_entry(reference, f"{app}-app"), settings=settings
            )
            sizes[topology][app] = mesh_mb(built.reference, reference)
            print(f"  {topology} layer on {app}: {sizes[topology][app]:.1f} MB", flush=True)
    return sizes


def ready_times(made: dict[str, str], scratch: Path) -> dict[str, list[float]]:
    certs = common.certs(scratch)
    settings = common.settings(image_name="meshexp-bench/demo-{workload}")
    docker_engine.remove_network(time_to_ready.NETWORK)
    docker_engine.create_network(time_to_ready.NETWORK)
    samples: dict[str, list[float]] = {}
    try:
        for app, reference in made.items():
            built = build_workload_image(
                workload=from_entry(reference, f"{app}-app"), settings=settings
            )
            name = f"bench-ready-{app}"
            samples[app] = []
            for index in range(STARTS):
                time_to_ready.create(built.reference, name, certs, {})
                samples[app].append(time_to_ready.ready_after_start(name))
                print(f"  {app} start {index + 1}: {samples[app][-1]:.2f} s", flush=True)
            docker_engine.remove_container(name)
    finally:
        docker_engine.remove_network(time_to_ready.NETWORK)
    return samples


def platform_layers(scratch: Path) -> dict[str, dict[str, float]]:
    """MB (compressed) each platform's mesh adds to the scratch application, per
    topology, as `publish --from` stores it."""
    sizes: dict[str, dict[str, float]] = {}
    with LocalRegistry(scratch / "registry") as registry:
        folder = scratch / "app"
        folder.mkdir()
        application = apps.scratch_index(registry.address, "bench", folder)
        client = RegistryClient(registry.address)
        app_name, _, app_tag = application.split("/", 1)[1].rpartition(":")
        app_index, _ = client.manifest(app_name, app_tag)
        for topology in ("demo", "production"):
            [published] = publish_platforms(
                workloads=[from_entry(application, "scratch-app")],
                settings=platform_settings(topology),
                registry=registry.address,
                allow_standin=True,
                sbom=False,
                provenance=False,
            )
            _, name, _ = split_reference(published.reference)
            sizes[topology] = {}
            for image in published.platforms:
                arch = image.platform.split("/")[1]
                manifest, _ = client.manifest(name, image.digest)
                [entry] = [
                    e for e in app_index["manifests"] if e["platform"]["architecture"] == arch
                ]
                app_manifest, _ = client.manifest(app_name, entry["digest"])
                added = manifest["layers"][len(app_manifest["layers"]) :]
                sizes[topology][image.platform] = sum(int(layer["size"]) for layer in added) / 1e6
                print(
                    f"  {topology} {image.platform}: {sizes[topology][image.platform]:.1f} MB",
                    flush=True,
                )
    return sizes


def platform_settings(topology: str) -> Settings:
    files = {"linux/amd64": common.proxy(), "linux/arm64": equipment.standin_proxy("arm64")}
    return common.settings(
        platforms=PLATFORMS,
        proxy_files=files,
        topology=topology,
        image_name=f"meshexp-bench/mp-{topology}-{{workload}}",
    )


def main() -> None:
    smiley = (equipment.real_faces() or equipment.our_faces())["smiley"]
    build_base(reference=OFFLINE_BASE_IMAGE)  # the Python application's base
    with tempfile.TemporaryDirectory(prefix="meshexp-bench-from-") as scratch:
        root = Path(scratch)
        (root / "scratch-app").mkdir()
        with apps.applications(smiley, root / "scratch-app", "bench") as made:
            sizes = layer_sizes(made)
            samples = ready_times(made, root)
        per_platform = platform_layers(root)
    stats = {app: common.spread(values) for app, values in samples.items()}
    figures = [
        common.at_most(
            f"time to ready on the {app} application (median of {STARTS})",
            stats[app]["median"],
            "s",
            READY_TARGET,
        )
        for app in samples
    ]
    for topology, by_app in sizes.items():
        name = f"mesh layer, {topology} topology (largest of the three, uncompressed)"
        largest = max(by_app.values())
        if topology == "production":
            figures.append(common.at_most(name, largest, "MB", LAYER_TARGET_MB))
        else:
            figures.append(common.reported(name, largest, "MB"))
    figures += [
        common.reported(
            f"mesh layer, {topology} topology, {platform} (compressed{STANDIN.get(platform, '')})",
            size,
            "MB",
        )
        for topology, by_platform in per_platform.items()
        for platform, size in by_platform.items()
    ]
    common.save(
        "from_image",
        figures,
        {"layer_mb": sizes, "platform_layer_mb": per_platform, "samples": samples, "stats": stats},
    )


if __name__ == "__main__":
    main()
