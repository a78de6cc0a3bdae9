"""The SPIRE configs we render: the image's server and agents, and the production
topology's own server. One place, so that the trimmed SPIRE build (spire_plugins.py)
keeps exactly the plugins these name.
"""

from __future__ import annotations

from builder.build.templates import render_template
from builder.config.settings import Settings
from builder.config.types import TOPOLOGIES

# Where the demo image's SPIRE server listens, on loopback inside the container.
SPIRE_SERVER_PORT = 18081
ATTESTATIONS = ("join_token", "x509pop")


def image_configs(settings: Settings) -> dict[str, tuple[str, str]]:
    """The SPIRE configs an image of `settings` carries: context path -> (program, text)."""
    if settings.topology == "demo":
        context = {"settings": settings, "spire_server_port": SPIRE_SERVER_PORT}
        return {
            "spire/server.conf": ("server", render_template("server.conf.j2", context)),
            "spire/agent.conf": (
                "agent",
                _agent(settings, "join_token", "127.0.0.1", SPIRE_SERVER_PORT),
            ),
        }
    return {
        f"spire/agent-{attestation.replace('_', '-')}.conf": (
            "agent",
            _agent(settings, attestation, "${SPIRE_SERVER_ADDRESS}", "${SPIRE_SERVER_PORT}"),
        )
        for attestation in ATTESTATIONS
    }


def _agent(settings: Settings, attestation: str, address: str, port: object) -> str:
    context = {
        "settings": settings,
        "attestation": attestation,
        "server_address": address,
        "server_port": port,
    }
    return render_template("agent.conf.j2", context)


def production_server_config(trust_domain: str) -> str:
    """The config of `meshexp-build spire-server` (the production topology's server)."""
    return render_template("external-server.conf.j2", {"trust_domain": trust_domain})


def every_config() -> list[tuple[str, str]]:
    """(program, text) of every SPIRE config we render, for every topology."""
    configs = [("server", production_server_config(Settings().trust_domain))]
    for topology in TOPOLOGIES:
        configs += image_configs(Settings().with_(topology=topology)).values()
    return configs
