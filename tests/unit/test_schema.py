"""The JSON Schemas agree with the tool: what it accepts validates, what it refuses does not."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from builder.cli import main
from builder.config.catalog import SCHEMA_FILE, SCHEMA_MODELINE, catalog_schema_text, load_catalog
from builder.config.editor_schema import json_schema
from builder.config.models import read_workload
from builder.config.settings import settings_from_mapping
from builder.core.errors import CatalogError, SettingsError

IMAGES = Path(__file__).resolve().parents[2] / "images"


def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)  # a valid schema in itself
    return jsonschema.Draft202012Validator(schema)


def test_shipped_schema_is_the_models_schema() -> None:
    """images/catalog.schema.json is generated; regenerate it with `make golden`."""
    assert (IMAGES / SCHEMA_FILE).read_text() == catalog_schema_text()


@pytest.mark.parametrize("entry", sorted(IMAGES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_entries_validate_and_name_the_schema(entry: Path) -> None:
    text = entry.read_text()
    assert text.splitlines()[0] == SCHEMA_MODELINE
    errors = list(validator("catalog").iter_errors(yaml.safe_load(text)))
    assert not errors, [e.message for e in errors]
    assert entry.stem in load_catalog()


BAD_ENTRIES = {
    "unknown field": {"colour": "red"},
    "bad port name": {"ports": [{"name": "HTTP", "port": 80}]},
    "port out of range": {"ports": [{"name": "http", "port": 70000}]},
    "unknown app protocol": {"ports": [{"name": "http", "port": 80, "app_protocol": "h2"}]},
    "uid of a system user": {"user": {"name": "w", "uid": 0}},
    "two source kinds": {
        "binaries": [{"name": "x", "source": {"file": {"path": "x"}, "url": {"url": "x"}}}]
    },
    "bad debian package": {"debian": {"packages": ["Bad Name"]}},
    "unknown policy": {"inbound_default_policy": "open"},
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_entries_the_tool_refuses_the_schema_refuses(case: str, tmp_path: Path) -> None:
    entry = yaml.safe_load((IMAGES / "static-web.yaml").read_text()) | BAD_ENTRIES[case]
    with pytest.raises(CatalogError):
        read_workload(entry, "x.yaml:", tmp_path)
    assert list(validator("catalog").iter_errors(entry)), case


def test_settings_schema_agrees_with_the_settings_reader(tmp_path: Path) -> None:
    good = {"linkerd_version": "2.18", "proxy_uid": 2102, "inbound_ports_to_ignore": [4190]}
    assert not list(validator("settings").iter_errors(good))
    settings_from_mapping(good, "meshexp.yaml:", tmp_path)
    for bad in ({"proxy_uid": 80}, {"topology": "mesh"}, {"labels": {"io.meshexp.x": "y"}}):
        assert list(validator("settings").iter_errors(bad)), bad
        with pytest.raises(SettingsError):
            settings_from_mapping(bad, "meshexp.yaml:", tmp_path)


def test_schema_command_prints_each_schema() -> None:
    runner = CliRunner()
    for kind in ("catalog", "settings"):
        result = runner.invoke(main, ["schema", kind])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == json_schema(kind)
    assert runner.invoke(main, ["schema", "nope"]).exit_code == 2


def test_workloads_new_writes_the_schema_its_entry_names(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["workloads", "new", "inventory", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    entry = (tmp_path / "inventory.yaml").read_text()
    assert entry.startswith(SCHEMA_MODELINE + "\n")
    schema = json.loads((tmp_path / SCHEMA_FILE).read_text())
    assert schema == json_schema("catalog")
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(entry)))


SMILEY = yaml.safe_load((IMAGES / "smiley.yaml").read_text())


def with_value(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    entry = json.loads(json.dumps(SMILEY))
    holder = entry
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return entry


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("ports", 0, "port"), "8000", "ports[0].port: expected a whole number from 1 to 65535"),
        (("ports", 0, "port"), True, "ports[0].port: expected a whole number from 1 to 65535"),
        (("ports", 0, "port"), 0, "ports[0].port: 0 is out of range (1-65535)"),
        (("user", "uid"), 70000, "user.uid: 70000 is out of range (1000-65533)"),
        (("ports", 0, "protocol"), 5, "ports[0].protocol: '5' is not one of: TCP, UDP, SCTP"),
        (("ports", 0, "name"), "HTTP", "ports[0].name: 'HTTP' is not valid (an IANA service"),
        (("namespace",), "a b", "namespace: 'a b' is not valid (a DNS-1123 label)"),
        (("name",), True, "name: expected text, got bool"),
        (("user",), "x", "user: expected a mapping, got str"),
        (("command",), "x", "command: expected a list, got str"),
        (("ports", 0, "zz"), 1, "ports[0]: unknown field 'zz'; valid fields are: name, port,"),
    ],
)
def test_each_kind_of_bad_value_is_named_with_what_would_be_valid(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    with pytest.raises(CatalogError) as refused:
        read_workload(with_value(path, value), "smiley.yaml", IMAGES)
    assert message in refused.value.message


def test_an_unknown_field_is_named_before_the_errors_beside_it() -> None:
    """As one reads a file: a misspelt key first, the first of several by name."""
    entry = with_value(("ports", 0, "port"), 0) | {"zeta": 1, "alpha": 2}
    with pytest.raises(CatalogError, match=r"unknown field 'alpha'; valid fields are: name,"):
        read_workload(entry, "smiley.yaml", IMAGES)
