"""What the verbs share: the settings options, output and progress options, and
small parsers of option values; each verb module builds on these."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from builder.cli.display import MODES
from builder.config.catalog import Override, find_workload, load_catalog
from builder.config.contract import INBOUND_POLICIES
from builder.config.identity import IDENTITY_STYLES
from builder.config.mirrors import PULL_POLICIES
from builder.config.models import Workload
from builder.config.settings import (
    Settings,
    default_settings_file,
    load_settings,
)
from builder.config.types import IPTABLES_MODES, PLATFORMS, SPIRE_PLUGIN_CHOICES, TOPOLOGIES

F = TypeVar("F", bound=Callable[..., Any])


# Where upstream's images come from: every command that pulls any takes these.
PULL_OPTIONS = [
    click.option(
        "--pull",
        type=click.Choice(PULL_POLICIES),
        help="When to pull upstream's images: missing (default), always, never.",
    ),
    click.option(
        "--mirror",
        "mirrors",
        multiple=True,
        help="UPSTREAM=MIRROR: pull images under UPSTREAM from MIRROR (repeat), e.g. "
        "cr.l5d.io=registry.corp:5000/l5d.",
    ),
]


def pull_options(func: F) -> F:
    for option in reversed(PULL_OPTIONS):
        func = option(func)
    return func


SETTING_OPTIONS = [
    click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Settings file (YAML). Default: ./meshexp.yaml when present.",
    ),
    click.option(
        "--linkerd-version",
        help="The Linkerd release you run: a line (2.15 ... 2.20, each its edge release) or "
        "an edge release (edge-26.8.3). Default 2.20.",
    ),
    click.option("--proxy-version", help="Override the proxy version, e.g. v2.294.0."),
    click.option("--spire-version", help="SPIRE version, e.g. 1.13.3."),
    click.option(
        "--spire-plugins",
        type=click.Choice(SPIRE_PLUGIN_CHOICES),
        help="SPIRE built from Go sources: only the plugins our configs name "
        "(configured, the default) or every built-in (all).",
    ),
    click.option("--trust-domain", help="SPIFFE trust domain."),
    click.option(
        "--offline/--online",
        default=None,
        help="Offline: no container registry (Debian base, Go sources, --proxy-file).",
    ),
    click.option("--base-image", help="Base image reference."),
    *PULL_OPTIONS,
    click.option("--topology", type=click.Choice(TOPOLOGIES), help="SPIRE topology."),
    click.option("--iptables-mode", type=click.Choice(IPTABLES_MODES), help="iptables backend."),
    click.option("--proxy-uid", type=int, help="UID the proxy runs as (default 2102)."),
    click.option("--inbound-ports-to-ignore", help="Comma-separated ports."),
    click.option("--outbound-ports-to-ignore", help="Comma-separated ports."),
    click.option("--inbound-default-policy", type=click.Choice(INBOUND_POLICIES)),
    click.option(
        "--identity",
        type=click.Choice(IDENTITY_STYLES),
        help="The names in the SVID: namespaced (default) or the walk-through's "
        "(spiffe://TD/NAME, NAME.cluster.local).",
    ),
    click.option(
        "--profile-networks",
        help="Comma-separated CIDRs whose addresses the proxy resolves through the "
        "destination controller (direct connections get mTLS); default: private ranges.",
    ),
    click.option("--image-name", help="Image name pattern, e.g. registry/{workload}."),
    click.option(
        "--platform",
        help=f"Target platform ({', '.join(PLATFORMS)}); several, comma-separated, make one "
        "multi-platform image through BuildKit (publish, image --push).",
    ),
    click.option(
        "--proxy-file",
        multiple=True,
        help="The proxy binary (a linkerd2-proxy, or the test stand-in); PLATFORM=FILE "
        "gives one platform's (repeat).",
    ),
    click.option(
        "--catalog",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="A folder of your own workload files (repeat); its entries add to, or "
        "replace, the built-in ones.",
    ),
    click.option(
        "--binary",
        "binaries",
        multiple=True,
        help="NAME=FILE: use this file for the workload binary NAME (repeat), over the "
        "catalog's sources (e.g. --binary smiley=./smiley for the upstream Faces program).",
    ),
    click.option(
        "--label",
        "labels",
        multiple=True,
        help="KEY=VALUE: an extra image label (repeat); adds to the settings' labels.",
    ),
]


SETTING_NAMES = (
    "linkerd_version",
    "proxy_version",
    "spire_version",
    "spire_plugins",
    "trust_domain",
    "offline",
    "base_image",
    "pull",
    "mirrors",
    "topology",
    "iptables_mode",
    "proxy_uid",
    "inbound_ports_to_ignore",
    "outbound_ports_to_ignore",
    "inbound_default_policy",
    "identity",
    "profile_networks",
    "image_name",
    "platform",
    "proxy_file",
    "labels",
    "catalog",
    "binaries",
)


def setting_options(func: F) -> F:
    for option in reversed(SETTING_OPTIONS):
        func = option(func)
    return func


def settings_from(options: dict[str, Any]) -> Settings:
    """Build settings from the shared options, removing them from `options`."""
    config_file = options.pop("config_file", None) or default_settings_file()
    overrides = {name: options.pop(name, None) for name in SETTING_NAMES}
    return load_settings(config_file, overrides)


def announce_override(override: Override, said: set[str] = set()) -> None:  # noqa: B006
    """Say once per run which built-in entry a user's catalog replaces."""
    if override.name not in said:
        said.add(override.name)
        click.echo(
            f"catalog: {override.name} from {override.path} replaces {override.replaced}",
            err=True,
        )


def workload_of(name: str, settings: Settings) -> Workload:
    """A workload from the built-in catalog and the user's (--catalog, settings' catalog)."""
    return find_workload(name, settings.catalog, on_override=announce_override)


def catalog_of(settings: Settings) -> dict[str, Workload]:
    return load_catalog(settings.catalog, on_override=announce_override)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        "output_format",
        type=click.Choice(("text", "json")),
        default="text",
        show_default=True,
        help="Output format.",
    )(func)


def progress_options(func: F) -> F:
    """--progress and --verbose, for commands that build."""
    func = click.option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Show the full output of every step (the engine's build log, debootstrap).",
    )(func)
    return click.option(
        "--progress",
        "progress_mode",
        type=click.Choice(MODES),
        default="auto",
        show_default=True,
        help="auto: a live view on a terminal, plain lines elsewhere; plain: plain lines "
        "with the full build log; quiet: nothing but errors.",
    )(func)


def folder_option(default: Path, help_text: str) -> Callable[[Callable[..., Any]], Any]:
    """`--dir FOLDER` (parameter `folder`): where a command keeps its state."""
    return click.option(
        "--dir",
        "folder",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help_text,
    )


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    return parse_pairs(pairs, "--env")


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    """NAME=VALUE items of a repeated option, or a usage error naming it."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint=option)
        found[key] = value
    return found


def stop_on_sigterm() -> threading.Event:
    """An event that SIGTERM sets, for commands that run in the foreground until stopped
    (Ctrl-C is a KeyboardInterrupt)."""
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    return stop_requested


def lab_option(help_text: str) -> Callable[[F], F]:
    """`--lab DIR`: the folder `meshexp-build lab up` started a lab in."""
    return click.option(
        "--lab",
        "lab_dir",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help=help_text,
    )
