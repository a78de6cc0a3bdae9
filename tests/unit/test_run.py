"""`run` helpers that need no engine: routes, and refusing --apply without a kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cluster.run import Route, parse_route, run_workload
from builder.cluster.spire_server import entry_commands
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.core.errors import MeshexpError


def test_parse_route() -> None:
    assert parse_route("10.42.0.0/16:172.18.0.2") == Route("10.42.0.0/16", "172.18.0.2")
    assert parse_route("10.42.1.7/16:172.18.0.2").cidr == "10.42.0.0/16"


@pytest.mark.parametrize(
    "text", ["10.42.0.0/16", "10.42.0.0/16:gateway", "x:1.2.3.4", "10.42.0.0/16:1.2.3.4; id"]
)
def test_bad_routes(text: str) -> None:
    with pytest.raises(MeshexpError, match="expected CIDR:VIA"):
        parse_route(text)


def test_apply_needs_a_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(MeshexpError, match="--apply needs --kubeconfig"):
        run_workload(
            workload=find_workload("smiley"),
            settings=Settings(),
            certs=tmp_path,
            network="n",
            manifests_dir=tmp_path,
            apply=True,
        )


def test_entry_commands_select_the_proxy_uid() -> None:
    commands = entry_commands(find_workload("smiley"), Settings())
    assert commands[0].startswith(
        "spire-server token generate -spiffeID "
        "spiffe://root.linkerd.cluster.local/meshexp/agent/smiley"
    )
    assert "-selector unix:uid:2102" in commands[1]
    assert (
        "-spiffeID spiffe://root.linkerd.cluster.local/ns/faces/externalworkload/smiley"
        in commands[1]
    )
    assert "-dns" not in commands[1]  # the SVID carries the SPIFFE ID alone
    assert "x509pop:subject:cn:smiley" in commands[2]
