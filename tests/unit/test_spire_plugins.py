"""SPIRE with only the configured plugins: what is kept, how catalog files are derived,
and that the derivation refuses a file whose shape it does not know."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.build import gobuild
from builder.build.render import render_files
from builder.build.spire_configs import production_server_config
from builder.build.spire_plugins import (
    FULL_BUILD_SETTING,
    Plugin,
    ShapeError,
    configured_plugins,
    derive_catalog_file,
    derive_module,
    plugins_in_config,
)
from builder.check.doctor import diagnose
from builder.config.catalog import load_catalog
from builder.config.settings import load_settings
from builder.config.sources import GoSource
from builder.core.errors import SettingsError

PLUGIN = "github.com/spiffe/spire/pkg/server/plugin"

# Shaped as SPIRE v1.13's pkg/server/catalog/nodeattestor.go is (written here, not copied).
NODE_ATTESTORS = f"""package catalog

import (
\t"github.com/spiffe/spire/pkg/common/catalog"
\t"{PLUGIN}/nodeattestor"
\t"{PLUGIN}/nodeattestor/awsiid"
\t"{PLUGIN}/nodeattestor/jointoken"
\tpsat "{PLUGIN}/nodeattestor/k8spsat"
\t"{PLUGIN}/nodeattestor/x509pop"
)

type repo struct{{ nodeattestor.Repository }}

func (r *repo) BuiltIns() []catalog.BuiltIn {{
\treturn []catalog.BuiltIn{{
\t\tawsiid.BuiltIn(),
\t\tjointoken.BuiltIn(),
\t\tpsat.BuiltIn(),
\t\tx509pop.BuiltIn(),
\t}}
}}

func (r *repo) New() catalog.Facade {{ return new(nodeattestor.V1) }}
"""
JOIN_TOKEN = {Plugin("server", "NodeAttestor", "join_token")}


def test_every_rendered_config_names_only_kept_plugins() -> None:
    """Each catalog workload in each topology, and the production SPIRE server: a
    config naming a plugin the trimmed build drops fails here, not in a container."""
    kept = configured_plugins()
    named: set[Plugin] = set()
    for workload in load_catalog().values():
        for topology in ("demo", "production"):
            settings = load_settings(None, {"topology": topology})
            for path, (text, _) in render_files(workload, settings).items():
                if path.startswith("spire/"):
                    side = "server" if "server" in path else "agent"
                    named |= plugins_in_config(side, text)
    named |= plugins_in_config("server", production_server_config("example.org"))
    assert named <= kept, f"configs name plugins the build drops: {named - kept}"
    assert Plugin("agent", "NodeAttestor", "x509pop") in named
    assert Plugin("server", "UpstreamAuthority", "disk") in named
    assert not any(plugin.name.startswith(("aws", "gcp", "azure", "k8s")) for plugin in kept)


def test_derivation_drops_the_imports_and_entries_of_unkept_plugins() -> None:
    kept = {*JOIN_TOKEN, Plugin("server", "NodeAttestor", "x509pop")}
    derived = derive_catalog_file(NODE_ATTESTORS, "nodeattestor.go", "server", kept)
    assert "\t\tjointoken.BuiltIn(),\n\t\tx509pop.BuiltIn(),\n\t}" in derived
    for gone in ("awsiid", "psat", "k8spsat"):
        assert gone not in derived
    assert f'"{PLUGIN}/nodeattestor"' in derived  # the type's own package stays
    assert "func (r *repo) New()" in derived


def test_derivation_can_drop_every_builtin_of_a_type() -> None:
    derived = derive_catalog_file(NODE_ATTESTORS, "nodeattestor.go", "server", set())
    assert "return []catalog.BuiltIn{}" in derived
    assert ".BuiltIn()" not in derived


def test_a_file_without_builtins_is_left_as_it_is() -> None:
    text = f'package catalog\n\nimport (\n\t"{PLUGIN}/nodeattestor/jointoken"\n)\n'
    assert derive_catalog_file(text, "catalog.go", "server", set()) == text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("\t\tawsiid.BuiltIn(),\n", ""), "its BuiltIns() list and its plugin imports differ"),
        (("\t\tawsiid.BuiltIn(),", "\t\tawsiid.BuiltIn(awsiid.Fast),"), "entry it cannot read"),
        (("func (r *repo) New()", "var _ = psat.Name\n\nfunc (r *repo) New()"), "'psat' is used"),
        (('\t"{PLUGIN}/nodeattestor/jointoken"\n', ""), "differ"),
        (("return []catalog.BuiltIn{", "return append(base,"), "no `BuiltIns()"),
        (
            (f'\t"{PLUGIN}/nodeattestor/awsiid"', f'\t"{PLUGIN}/keymanager/awsiid"'),
            "plugins of several types",
        ),
        (("import (", "import (\n\t`odd`"), "an import line it cannot read"),
    ],
)
def test_derivation_refuses_a_changed_upstream_file(change: tuple[str, str], problem: str) -> None:
    old, new = (part.replace("{PLUGIN}", PLUGIN) for part in change)
    assert old in NODE_ATTESTORS
    changed = NODE_ATTESTORS.replace(old, new)
    with pytest.raises(ShapeError) as raised:
        derive_catalog_file(changed, "v9.9.9 pkg/server/catalog/nodeattestor.go", "server", set())
    message = raised.value.message
    assert problem in message
    assert "v9.9.9 pkg/server/catalog/nodeattestor.go" in message
    assert FULL_BUILD_SETTING in message
    assert "\n" not in message


def test_derivation_refuses_a_kept_plugin_the_version_lacks() -> None:
    kept = {Plugin("server", "NodeAttestor", "tpm_devid")}
    with pytest.raises(ShapeError, match="no built-in 'tpmdevid' to keep"):
        derive_catalog_file(NODE_ATTESTORS, "nodeattestor.go", "server", kept)


def _module(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / "pkg/agent/catalog").mkdir(parents=True, exist_ok=True)
    (root / "pkg/agent/catalog/catalog.go").write_text("package catalog\n")
    return root


def test_module_derivation_rewrites_catalog_files_and_leaves_tests(tmp_path: Path) -> None:
    root = _module(
        tmp_path,
        {
            "pkg/server/catalog/nodeattestor.go": NODE_ATTESTORS,
            "pkg/server/catalog/nodeattestor_test.go": NODE_ATTESTORS,
        },
    )
    derive_module(root, "v1.0.0", set(JOIN_TOKEN))
    assert "awsiid" not in (root / "pkg/server/catalog/nodeattestor.go").read_text()
    assert (root / "pkg/server/catalog/nodeattestor_test.go").read_text() == NODE_ATTESTORS


def test_module_derivation_refuses_a_type_without_a_list(tmp_path: Path) -> None:
    root = _module(tmp_path, {"pkg/server/catalog/nodeattestor.go": NODE_ATTESTORS})
    kept = {*JOIN_TOKEN, Plugin("server", "KeyManager", "memory")}
    with pytest.raises(ShapeError, match="no BuiltIns\\(\\) list of keymanager"):
        derive_module(root, "v1.0.0", kept)


def test_module_derivation_refuses_another_datastore(tmp_path: Path) -> None:
    root = _module(tmp_path, {"pkg/server/catalog/nodeattestor.go": NODE_ATTESTORS})
    with pytest.raises(ShapeError, match="its only DataStore is 'sql'"):
        derive_module(root, "v1.0.0", {Plugin("server", "DataStore", "postgres")})


def test_the_setting_chooses_the_build_and_the_cache_keeps_them_apart(tmp_path: Path) -> None:
    proxy = tmp_path / "proxy"
    proxy.write_bytes(b"proxy")
    offline = {"offline": True, "proxy_file": str(proxy)}
    trimmed = load_settings(None, offline).spire("spire-server")
    full = load_settings(None, {**offline, "spire_plugins": "all"}).spire("spire-server")
    assert isinstance(trimmed, GoSource)
    assert isinstance(full, GoSource)
    assert trimmed.trim_spire
    assert not full.trim_spire
    assert GoSource(**trimmed.model_dump()) == full
    assert gobuild.binary_key(trimmed, "amd64") != gobuild.binary_key(full, "amd64")
    with pytest.raises(SettingsError, match="spire_plugins"):
        load_settings(None, {"spire_plugins": "some"})


def test_doctor_says_which_build(tmp_path: Path) -> None:
    proxy = tmp_path / "proxy"
    proxy.write_bytes(b"proxy")
    offline = {"offline": True, "proxy_file": str(proxy)}
    for overrides, expected in (
        (offline, "only those our configs name (agent/KeyManager/memory"),
        ({**offline, "spire_plugins": "all"}, "every built-in (spire_plugins: all)"),
        ({}, "every built-in (SPIRE's own binaries)"),
    ):
        findings = {f.what: f for f in diagnose(settings=load_settings(None, overrides))}
        assert expected in findings["spire plugins"].detail
