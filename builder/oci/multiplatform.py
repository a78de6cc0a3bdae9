"""`publish --platform A,B`: one multi-platform image through BuildKit, with SBOM and provenance.

Each platform is rendered as a build context of its own, exactly as a
single-platform build would be (its own binaries, labels and proxy), built by
BuildKit for that platform and pushed by digest. The platforms' indexes (each
an image manifest and its attestation manifest) are then put together as ONE
index under the tag. Offline, the Debian base of each platform and the SBOM
scanner come from the builder's helper registry on 127.0.0.1. It is one module of
over 400 lines because the per-platform builds and the index put together from their
digests share one set of names, and splitting them would pass those around.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.build.base_image import rootfs_tarball
from builder.build.buildkit_programs import cached_buildkit
from builder.build.from_image import settle
from builder.build.gobuild import HOST_ARCH, cached_go_binary
from builder.build.image import prefetch_components
from builder.build.plan import plan_components
from builder.build.provenance import provenance_labels, revision_and_source
from builder.build.render import RenderResult, UsedImages, render_build_context
from builder.build.syft import cached_syft
from builder.build.upstream import settle_proxy_version, upstream_references
from builder.config.mirrors import is_local, normalized, registry_api
from builder.config.models import Workload
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.sources import GoSource
from builder.core.cache import cache_key, cache_root, link_or_copy
from builder.core.errors import BuildError, SettingsError
from builder.core.progress import Progress
from builder.core.resources import go_dir
from builder.oci import buildkit
from builder.oci.publish import registry_host, registry_reference
from builder.oci.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    LocalRegistry,
    RegistryClient,
    client_for,
    split_reference,
)

SYFT_VERSION = "v1.57.1"
# The SBOM generator BuildKit pulls when none is named (a mirror of Docker Hub serves it).
BUILDKIT_SBOM_SCANNER = "docker.io/docker/buildkit-syft-scanner:stable-1"
SCANNER_WRAPPER = GoSource(package="./cmd/sbom-scanner", local=go_dir())


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    digest: str
    standin: bool


@dataclass(frozen=True)
class PublishedIndex:
    """One multi-platform image in the registry: the index and each platform's image."""

    workload: str
    reference: str
    digest: str
    platforms: tuple[PlatformImage, ...]
    sbom: bool
    provenance: bool


@dataclass(frozen=True)
class Session:
    """A builder, and the helper registry beside it ("" where none is needed)."""

    builder: buildkit.Builder
    helper: str

    @property
    def helper_client(self) -> RegistryClient:
        return RegistryClient(self.helper)


def check_platforms(settings: Settings) -> tuple[str, ...]:
    """The platforms to build, each of which can run its build steps here."""
    platforms = settings.target_platforms
    for platform in platforms:
        missing = buildkit.emulation_missing(platform)
        if missing:
            raise BuildError(missing)
    return platforms


def refuse_standins(rendered: dict[str, RenderResult], allow_standin: bool) -> None:
    """A published image carries a real proxy, unless the user says a stand-in will do."""
    standins = [platform for platform, result in rendered.items() if result.standin]
    if standins and not allow_standin:
        platform = standins[0]
        raise SettingsError(
            f"publish refuses the proxy stand-in for {platform} (test equipment, not a Linkerd "
            f"proxy): give a real linkerd2-proxy with --proxy-file {platform}=FILE, or add "
            "--allow-standin to publish it anyway (test registries only)"
        )


def upstream_digests(workloads: list[Workload], settings: Settings) -> UsedImages:
    """Each upstream image the builds name, with the digest its registry (the mirror,
    where one covers it) serves now: what BuildKit resolves the same tag to."""
    plans = [plan_components(workload, settings) for workload in workloads]
    references = dict.fromkeys(ref for plan in plans for ref in upstream_references(plan, settings))
    used: UsedImages = {}
    for reference in references:
        pulled = settings.mirrored(reference)
        host, name, tag = split_reference(normalized(pulled))
        _, digest = client_for(registry_api(host)).manifest(name, tag)
        used[reference] = (pulled, digest)
    return used


def local_mirrors(settings: Settings) -> list[str]:
    """The mirrors on this machine, which BuildKit speaks to over plain HTTP."""
    hosts = [mirror.split("/")[0] for mirror in settings.mirrors.values()]
    return [host for host in dict.fromkeys(hosts) if is_local(host)]


@contextlib.contextmanager
def session(
    *,
    builder_address: str | None,
    registry_host: str,
    need_helper: bool,
    progress: Progress,
    insecure: tuple[str, ...] = (),
) -> Iterator[Session]:
    """A builder (ours, or the given one) and, where offline parts are needed, the
    helper registry (its storage kept in the cache)."""
    with contextlib.ExitStack() as stack:
        helper = ""
        if need_helper:
            helper = stack.enter_context(LocalRegistry(cache_root() / "registry")).address
        plain = [helper] if helper else []
        plain += [host for host in (registry_host, *insecure) if is_local(host)]
        if builder_address is None:
            builder = stack.enter_context(buildkit.own_builder(plain, progress))
        else:
            builder = buildkit.given_builder(builder_address, progress)
        yield Session(builder, helper)


def _has(client: RegistryClient, name: str, tag: str) -> bool:
    try:
        client.manifest(name, tag)
    except BuildError:
        return False
    return True


def _push_helper_image(
    run: Session,
    *,
    name: str,
    tag: str,
    files: dict[str, Path],
    dockerfile: str,
    platform: str,
    progress: Progress,
) -> str:
    """Build a small image from `files` into the helper registry, once per tag."""
    reference = f"{run.helper}/{name}:{tag}"
    if _has(run.helper_client, name, tag):
        return reference
    with tempfile.TemporaryDirectory(prefix="meshexp-helper-", dir=cache_root()) as scratch:
        root = Path(scratch)
        for relative, source in files.items():
            link_or_copy(source, root / relative)
        (root / "Dockerfile").write_text(dockerfile)
        with progress.phase(f"helper image {name}:{tag} ({platform})"):
            buildkit.build(
                run.builder,
                context=root,
                platform=platform,
                output=f"type=image,name={reference},push=true,registry.insecure=true",
                opts={},
                on_line=progress.line,
            )
    return reference


def base_for(run: Session, arch: str, progress: Progress) -> str:
    """The offline Debian base of `arch` in the helper registry (debootstrap, cached)."""
    tarball = rootfs_tarball(arch, progress)
    return _push_helper_image(
        run,
        name="meshexp/debian-base",
        tag=f"bookworm-{arch}-{tarball.parent.name[:12]}",
        files={"rootfs.tar": tarball},
        dockerfile='FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n',
        platform=f"linux/{arch}",
        progress=progress,
    )


def sbom_scanner(run: Session, progress: Progress) -> str:
    """Our SBOM generator (syft from the Go module proxy, wrapped for BuildKit's
    scanning protocol by go/cmd/sbom-scanner) in the helper registry."""
    syft = cached_syft(SYFT_VERSION, progress)
    wrapper = cached_go_binary(SCANNER_WRAPPER, HOST_ARCH, progress)
    tag = cache_key(syft=str(syft), wrapper=str(wrapper))[:16]
    return _push_helper_image(
        run,
        name="meshexp/sbom-scanner",
        tag=tag,
        files={"syft": syft, "sbom-scanner": wrapper},
        dockerfile=(
            "FROM scratch\nCOPY syft sbom-scanner /usr/local/bin/\nENV HOME=/tmp TMPDIR=/tmp\n"
            'ENTRYPOINT ["/usr/local/bin/sbom-scanner"]\n'
        ),
        platform=f"linux/{HOST_ARCH}",
        progress=progress,
    )


def build_options(
    settings: Settings,
    run: Session,
    platform: str,
    sbom: bool,
    provenance: bool,
    progress: Progress,
) -> dict[str, str]:
    """The frontend options of one platform's build: attestations, VCS facts, base."""
    opts: dict[str, str] = {}
    if provenance:
        opts["attest:provenance"] = "mode=max"
        revision, source = revision_and_source(Path.cwd())
        if revision:
            opts["vcs:revision"] = revision
        if source:
            opts["vcs:source"] = source
    if sbom:
        opts["attest:sbom"] = ""  # BuildKit's own scanner image, from Docker Hub
        if settings.offline:
            opts["attest:sbom"] = f"generator={sbom_scanner(run, progress)}"
        elif settings.mirrored(BUILDKIT_SBOM_SCANNER) != BUILDKIT_SBOM_SCANNER:
            opts["attest:sbom"] = f"generator={settings.mirrored(BUILDKIT_SBOM_SCANNER)}"
    if settings.resolved_base_image == OFFLINE_BASE_IMAGE:
        base = base_for(run, platform.split("/")[1], progress)
        opts[f"context:{OFFLINE_BASE_IMAGE}"] = f"docker-image://{base}"
    return opts


def merge_indexes(indexes: list[dict[str, object]]) -> dict[str, object]:
    """One OCI index holding every platform's image and attestation manifests."""
    manifests: list[object] = []
    for index in indexes:
        manifests += list(index.get("manifests") or [])  # type: ignore[call-overload]
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def image_digest(index: dict[str, object], platform: str) -> str:
    """The digest of `platform`'s image manifest in an index."""
    os_name, arch = platform.split("/")
    for entry in index.get("manifests") or []:  # type: ignore[attr-defined]
        found = entry.get("platform") or {}
        if found.get("os") == os_name and found.get("architecture") == arch:
            return str(entry["digest"])
    raise BuildError(f"the index BuildKit pushed has no {platform} image")


def publish_workload(
    *,
    workload: Workload,
    settings: Settings,
    registry: str,
    run: Session,
    rendered: dict[str, RenderResult],
    sbom: bool,
    provenance: bool,
    progress: Progress,
) -> PublishedIndex:
    """Build each platform, push it by digest, then tag one index of them all."""
    reference = registry_reference(settings.image_reference(workload.name), registry)
    host, name, tag = split_reference(reference)
    repository = f"{host}/{name}"
    target = client_for(host)
    indexes, images = [], []
    for platform, result in rendered.items():
        output = f"type=image,name={repository},push-by-digest=true,push=true"
        if is_local(host):
            output += ",registry.insecure=true"
        opts = build_options(settings, run, platform, sbom, provenance, progress)
        with progress.phase(f"image {workload.name} for {platform} (BuildKit)"):
            metadata = buildkit.build(
                run.builder,
                context=result.output,
                platform=platform,
                output=output,
                opts=opts,
                on_line=progress.line,
            )
        pushed = metadata.get("containerimage.digest", "")
        index = _as_index(target, name, pushed, platform)
        indexes.append(index)
        images.append(PlatformImage(platform, image_digest(index, platform), result.standin))
    digest = target.put_manifest(name, tag, merge_indexes(indexes))
    return PublishedIndex(workload.name, reference, digest, tuple(images), sbom, provenance)


def _as_index(client: RegistryClient, name: str, digest: str, platform: str) -> dict[str, object]:
    """What BuildKit pushed as an index: with attestations it is one already; without,
    it is a bare image manifest, described here as an index of one."""
    document, _, size = client.manifest_with_size(name, digest)
    if document.get("mediaType") == OCI_INDEX:
        return document
    os_name, arch = platform.split("/")
    media = document.get("mediaType", OCI_MANIFEST)
    entry = {"mediaType": media, "digest": digest, "size": size}
    return {"manifests": [{**entry, "platform": {"os": os_name, "architecture": arch}}]}


def application_hosts(workloads: list[Workload]) -> list[str]:
    """The registries BuildKit takes the application images of --from workloads from
    (each platform's own image), those on this machine to be spoken to over plain HTTP;
    refused with one line for an application image no registry holds."""
    hosts = []
    for workload in workloads:
        if workload.from_image is None:
            continue
        used, digest = workload.image_used
        if not digest.startswith("sha256:"):
            raise BuildError(
                f"{used} is in the Docker engine only, and each platform's image of a "
                "multi-platform build comes from a registry: push it (e.g. docker buildx "
                "build --platform ... --push) and give its registry reference"
            )
        host = used.split("/")[0]
        if is_local(host):
            hosts.append(host)
    return list(dict.fromkeys(hosts))


def prepare_platforms(
    *, workloads: list[Workload], settings: Settings, progress: Progress | None = None
) -> list[str]:
    """Build (and cache) what publishing these workloads for these platforms needs, and
    push nothing: each platform's Go components, the offline Debian roots, BuildKit and
    the SBOM scanner. What was prepared, a line each.
    """
    progress = progress or Progress()
    done = []
    for platform in check_platforms(settings):
        narrowed = settings.for_platform(platform)
        count = prefetch_components(workloads, narrowed, progress=progress, with_proxy=False)
        done.append(f"{platform}: {count} components (the proxy is given, not built)")
        if narrowed.resolved_base_image == OFFLINE_BASE_IMAGE:
            done.append(f"{platform}: Debian root {rootfs_tarball(narrowed.arch, progress)}")
    programs = cached_buildkit(buildkit.BUILDKIT_VERSION, progress)
    done.append(
        f"buildkitd and buildctl {buildkit.BUILDKIT_VERSION}: {programs['buildkitd'].parent}"
    )
    if settings.offline:
        done.append(f"SBOM scanner: syft {SYFT_VERSION} at {cached_syft(SYFT_VERSION, progress)}")
        cached_go_binary(SCANNER_WRAPPER, HOST_ARCH, progress)
    return done


def publish_platforms(
    *,
    workloads: list[Workload],
    settings: Settings,
    registry: str,
    builder_address: str | None = None,
    allow_standin: bool = False,
    sbom: bool = True,
    provenance: bool = True,
    progress: Progress | None = None,
) -> list[PublishedIndex]:
    """Publish each workload as one multi-platform image (see the module's docstring).

    Everything that can fail before a build does (a platform that cannot run
    here, a component missing for a platform, a stand-in proxy) fails first.
    """
    progress = progress or Progress()
    platforms = check_platforms(settings)
    host = registry_host(registry)
    settings = settle_proxy_version(settings, progress)
    workloads = [settle(workload, settings, progress) for workload in workloads]
    applications = application_hosts(workloads)
    used = upstream_digests(workloads, settings) if not settings.offline else {}
    scratch_root = cache_root() / "contexts"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="publish-", dir=scratch_root) as scratch:
        contexts: dict[str, dict[str, RenderResult]] = {}
        for workload in workloads:
            contexts[workload.name] = {}
            for platform in platforms:
                narrowed = settings.for_platform(platform)
                folder = Path(scratch) / workload.name / platform.replace("/", "-")
                contexts[workload.name][platform] = render_build_context(
                    workload=workload,
                    settings=narrowed,
                    output=folder,
                    extra_labels=provenance_labels(Path.cwd()),
                    progress=progress,
                    used_images=used,
                )
            refuse_standins(contexts[workload.name], allow_standin)
        need_helper = settings.offline or settings.resolved_base_image == OFFLINE_BASE_IMAGE
        with session(
            builder_address=builder_address,
            registry_host=host,
            need_helper=need_helper,
            progress=progress,
            insecure=(*local_mirrors(settings), *applications),
        ) as run:
            offered = run.builder.platforms()
            for platform in platforms:
                if platform not in offered:
                    raise BuildError(
                        f"the builder at {run.builder.address} builds for "
                        f"{', '.join(sorted(set(offered))) or 'no platform'}, not {platform}: "
                        "add it to its worker's platforms (and qemu for it)"
                    )
            return [
                publish_workload(
                    workload=workload,
                    settings=settings,
                    registry=registry,
                    run=run,
                    rendered=contexts[workload.name],
                    sbom=sbom,
                    provenance=provenance,
                    progress=progress,
                )
                for workload in workloads
            ]


__all__ = ["PublishedIndex", "application_hosts", "prepare_platforms", "publish_platforms"]
