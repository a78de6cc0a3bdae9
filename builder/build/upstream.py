"""Upstream's images, as a build with registry access uses them: each pulled as the
pull policy says (Docker's missing, always, never), from the mirror that covers it,
and recorded with the digest actually used; and the proxy's version read from the
proxy image itself, so that a Linkerd release newer than any table here builds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.build.plan import Component
from builder.config.contract import PROXY_VERSION_FILE, parse_proxy_version
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.sources import ImageSource
from builder.core.errors import BuildError, SourceError
from builder.core.progress import Progress
from builder.engine import docker_engine


@dataclass(frozen=True)
class UsedImage:
    """An upstream image as this build used it."""

    upstream: str  # the reference as upstream publishes it
    used: str  # the reference pulled: the mirror's, where one covers it
    # The registry's digest (sha256:...); for an image that no registry served (built
    # or loaded into the engine), "local image <its ID>".
    digest: str


def ensure_image(upstream: str, settings: Settings, progress: Progress) -> UsedImage:
    """Have `upstream` (from its mirror, where one covers it) in the engine, as the pull
    policy says; the digest of what is there."""
    used = settings.mirrored(upstream)
    present = docker_engine.image_exists(used)
    if settings.pull == "never" and not present:
        raise SourceError(
            f"{used} is not in the Docker engine and --pull never forbids pulling it: pull it "
            f"(docker pull {used}) or build with --pull missing"
        )
    if settings.pull == "always" or not present:
        with progress.phase(f"pull {used}"):
            try:
                docker_engine.pull_image(used)
            except BuildError as exc:
                raise SourceError(
                    f"{exc.message}; without registry access build with --offline (Debian "
                    "base, Go sources, --proxy-file), or name a mirror: --mirror "
                    f"{upstream.split('/')[0]}=HOST[:PORT][/PATH]"
                ) from None
    digest = docker_engine.repo_digest(used)
    if not digest:
        digest = f"local image {docker_engine.image_attrs(used)['Id']}"
    return UsedImage(upstream=upstream, used=used, digest=digest)


def upstream_references(components: list[Component], settings: Settings) -> list[str]:
    """Every upstream image a build's Dockerfile names: its sources' and the base."""
    references = [c.source.ref for c in components if isinstance(c.source, ImageSource)]
    base = settings.resolved_base_image
    if base != OFFLINE_BASE_IMAGE:
        references.append(base)
    return list(dict.fromkeys(references))


def proxy_version_in(reference: str) -> str:
    """The proxy version an upstream proxy image carries (its version file)."""
    with tempfile.TemporaryDirectory(prefix="meshexp-proxy-version-") as scratch:
        target = Path(scratch) / "version"
        try:
            docker_engine.copy_from_image(reference, PROXY_VERSION_FILE, target)
        except BuildError:
            raise SourceError(
                f"{reference} has no {PROXY_VERSION_FILE}, which every Linkerd proxy image since "
                "edge-24.2.4 carries: is it a Linkerd proxy image? Give the proxy's version "
                "with --proxy-version vX.Y.Z"
            ) from None
        text = target.read_text(encoding="ascii", errors="replace").strip()
    parse_proxy_version(text)  # one line of the form vX.Y.Z, or a SettingsError saying so
    return text


def use_upstream_images(
    components: list[Component], settings: Settings, progress: Progress
) -> tuple[Settings, dict[str, UsedImage]]:
    """Pull what the build names (per the policy), and take the proxy's version from the
    proxy image unless the settings give one: the settings the build renders with, and
    each upstream reference's image as used."""
    used = {
        reference: ensure_image(reference, settings, progress)
        for reference in upstream_references(components, settings)
    }
    proxy = next((c for c in components if c.role == "proxy"), None)
    if (
        proxy is not None
        and isinstance(proxy.source, ImageSource)
        and settings.proxy_version is None
    ):
        settings = with_version_of(used[proxy.source.ref], settings, progress)
    return settings, used


def settle_proxy_version(settings: Settings, progress: Progress) -> Settings:
    """Settings whose proxy version is known: where neither the settings nor the table
    here give it (a release newer than the table), it is read from the proxy image."""
    if settings.proxy_version_known:
        return settings
    source = settings.proxy()
    assert isinstance(source, ImageSource)  # Settings.check refuses the other cases
    return with_version_of(ensure_image(source.ref, settings, progress), settings, progress)


def with_version_of(proxy: UsedImage, settings: Settings, progress: Progress) -> Settings:
    """The settings with the proxy version that the proxy image `proxy` carries."""
    version = proxy_version_in(proxy.used)
    progress.line(f"proxy {version} (read from {proxy.used})")
    return settings.with_(proxy_version=version).check()
