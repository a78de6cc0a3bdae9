"""`meshexp-build doctor`: what a build needs, what is present, and the fix for each gap."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from builder.build.gobuild import CROSS_CC, HOST_ARCH
from builder.build.plan import helper_source
from builder.build.sources import STANDIN_BANNER
from builder.build.spire_plugins import configured_plugins, describe_kept
from builder.check.walkthrough.steps import e2e_registries, missing_prerequisites
from builder.config.mirrors import normalized, registry_api
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.sources import FileSource, GoSource, ImageSource, UrlSource, describe_source
from builder.core.errors import MeshexpError
from builder.core.net import registry_answers
from builder.engine import docker_engine
from builder.oci.buildkit import emulation_missing


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str
    fix: str = ""


def online_registries(settings: Settings) -> list[str]:
    """The registries the online profile pulls from, as their references name them
    (through the settings' mirrors): the proxy's, SPIRE's, Faces' and the base's."""
    online = settings.with_(offline=False)
    sources = [online.proxy(), online.spire("spire-server"), online.spire("spire-agent")]
    references = [source.ref for source in sources if isinstance(source, ImageSource)]
    references += ["ghcr.io/buoyantio/faces-smiley:2.0.0", online.resolved_base_image]
    hosts = [normalized(online.mirrored(ref)).split("/")[0] for ref in references]
    return list(dict.fromkeys(hosts))


def registry_findings(
    settings: Settings, probe: Callable[[str], tuple[bool, str]] = registry_answers
) -> list[Finding]:
    """Whether each registry of the online profile answers now (`make demo` takes the
    online path only where all do)."""
    findings = []
    for host in online_registries(settings):
        answers, said = probe(registry_api(host))
        findings.append(
            Finding(
                "registry",
                answers,
                f"{host} {'answers' if answers else 'does not answer'} ({said})",
                "build offline (--offline, with --proxy-file), or name a mirror you can "
                f"reach: --mirror {host}=HOST[:PORT][/PATH]",
            )
        )
    return findings


def _engine() -> tuple[list[Finding], bool]:
    try:
        info = docker_engine.engine_info()
    except MeshexpError as exc:
        return [
            Finding(
                "engine",
                False,
                str(exc.message),
                "sudo scripts/ensure-docker.sh (installs and starts Debian's docker.io)",
            )
        ], False
    return [
        Finding(
            "engine",
            True,
            f"Docker {info.version} (API {info.api_version}), "
            f"{info.storage_driver}, {info.architecture}",
        ),
        Finding("builder", True, "classic builder through docker-py (no BuildKit features used)"),
    ], True


def _image_source(what: str, ref: str, engine_ok: bool) -> Finding:
    if engine_ok and docker_engine.image_exists(ref):
        return Finding(what, True, f"image {ref} is present locally")
    return Finding(
        what,
        True,
        f"image {ref} will be pulled (needs registry access)",
        "without registry access use --offline",
    )


def _source(what: str, source: object, engine_ok: bool) -> Finding:
    if isinstance(source, ImageSource):
        return _image_source(what, source.ref, engine_ok)
    if isinstance(source, FileSource):
        if not source.path.is_file():
            return Finding(
                what,
                False,
                f"file {source.path} is missing",
                "give an existing binary (e.g. --proxy-file PATH)",
            )
        standin = STANDIN_BANNER in source.path.read_bytes()
        note = " (PROXY STAND-IN: test equipment, not a Linkerd proxy)" if standin else ""
        return Finding(what, True, f"file {source.path}{note}")
    if isinstance(source, GoSource):
        go = shutil.which("go")
        return Finding(
            what,
            bool(go),
            f"{describe_source(source)} with {go or 'no Go toolchain'}",
            "" if go else "install Go 1.22 or later (apt-get install golang-go)",
        )
    assert isinstance(source, UrlSource)
    return Finding(what, True, f"url {source.url} (sha256 checked on download)")


def diagnose(*, settings: Settings) -> list[Finding]:
    """Every check, in the order a build meets them."""
    findings, engine_ok = _engine()
    base = settings.resolved_base_image
    if base == OFFLINE_BASE_IMAGE:
        present = engine_ok and docker_engine.image_exists(base)
        debootstrap = shutil.which("debootstrap")
        findings.append(
            Finding(
                "base image",
                present or bool(debootstrap),
                f"{base} {'is present' if present else 'is missing; `image` will build it'}",
                ""
                if present or debootstrap
                else "apt-get install debootstrap, then meshexp-build base",
            )
        )
    else:
        findings.append(_image_source("base image", base, engine_ok))
    try:
        proxy: object = settings.proxy()
    except MeshexpError as exc:
        findings.append(Finding("proxy", False, str(exc.message), "--proxy-file PATH"))
    else:
        findings.append(_source("proxy", proxy, engine_ok))
    if settings.topology == "demo":
        findings.append(_source("spire-server", settings.spire("spire-server"), engine_ok))
    findings.append(_source("spire-agent", settings.spire("spire-agent"), engine_ok))
    findings.append(_spire_plugins(settings))
    findings.append(_source("certcheck", helper_source(), engine_ok))
    return findings + _platform_findings(settings)


def _spire_plugins(settings: Settings) -> Finding:
    """Which SPIRE build the image will carry (the image's io.meshexp.spire-plugins)."""
    agent = settings.spire("spire-agent")
    if not isinstance(agent, GoSource):
        return Finding("spire plugins", True, "every built-in (SPIRE's own binaries)")
    if agent.trim_spire:
        kept = ", ".join(describe_kept(configured_plugins()))
        return Finding(
            "spire plugins",
            True,
            f"only those our configs name ({kept}); `spire_plugins: all` builds every built-in",
        )
    return Finding("spire plugins", True, "every built-in (spire_plugins: all)")


def _platform_findings(settings: Settings) -> list[Finding]:
    """What BuildKit needs for the platforms asked for (--platform A,B)."""
    others = [p for p in settings.target_platforms if p.split("/")[1] != HOST_ARCH]
    if len(settings.target_platforms) < 2 and not others:
        return []
    runc = shutil.which("runc", path="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin")
    findings = [
        Finding(
            "buildkit",
            bool(runc),
            "buildkitd and buildctl built from the Go module proxy, started as root "
            f"(runc: {runc or 'missing'}); or --builder ADDRESS",
            "" if runc else "apt-get install runc",
        )
    ]
    for platform in others:
        missing = emulation_missing(platform)
        findings.append(
            Finding(f"emulation {platform}", missing is None, missing or "qemu registered")
        )
        if settings.offline:
            arch = platform.split("/")[1]
            compiler = CROSS_CC[arch]
            found = shutil.which(compiler)
            findings.append(
                Finding(
                    f"C cross compiler {platform}",
                    bool(found),
                    f"{compiler} for SPIRE (cgo): {found or 'missing'}",
                    "" if found else "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
                )
            )
    if settings.offline:
        registry = shutil.which("docker-registry")
        findings.append(
            Finding(
                "helper registry",
                bool(registry),
                f"Debian's docker-registry for the offline base and SBOM scanner: "
                f"{registry or 'missing'}",
                "" if registry else "apt-get install docker-registry",
            )
        )
    return findings


def e2e_findings(
    findings: list[Finding], provider: str = "k3d", mirrors: Mapping[str, str] | None = None
) -> list[Finding]:
    """What the online end-to-end walk-through on `provider` needs, given the build
    findings (the proxy's among them) and the mirrors its pulls go through."""
    standin = any(f.what == "proxy" and "STAND-IN" in f.detail for f in findings)
    missing = missing_prerequisites(
        proxy_is_standin=standin, provider=provider, registries=e2e_registries(mirrors or {})
    )
    if not missing:
        tools = "k3d, " if provider == "k3d" else "kind (built here), "
        detail = f"{tools}kubectl, helm, linkerd, registry access, real proxy"
        return [Finding("e2e", True, detail)]
    return [Finding("e2e", False, item.split(":", 1)[0], item) for item in missing]
