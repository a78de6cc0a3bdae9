"""The catalog: shipped entries load; every kind of bad entry fails naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.config.catalog import (
    find_workload,
    load_catalog,
    load_workload_file,
    new_workload_file,
)
from builder.config.models import read_workload
from builder.config.sources import FirstOf, GoSource, ImageSource
from builder.core.errors import CatalogError

BASE = """\
name: demo
namespace: faces
ports:
  - {name: http, port: 8000, protocol: TCP}
user: {name: workload, uid: 2200}
debian: {packages: [busybox]}
command: [/bin/busybox, httpd, -f]
"""


def test_shipped_catalog_has_faces_trio_and_a_non_faces_workload() -> None:
    catalog = load_catalog()
    assert {"smiley", "color", "face", "faces", "static-web"} <= set(catalog)
    static = catalog["static-web"]
    assert static.debian_packages == ("busybox",)
    assert not static.binaries


def test_faces_workload_dispatches_on_faces_service() -> None:
    faces = find_workload("faces")
    assert faces.dispatch is not None
    assert faces.dispatch.env == "FACES_SERVICE"
    assert dict(faces.dispatch.commands)["color"][0] == "/opt/workload/bin/color"


def test_smiley_sources_online_image_offline_upstream_then_ours() -> None:
    smiley = find_workload("smiley")
    binary = smiley.binaries[0]
    assert isinstance(binary.source_for(offline=False), ImageSource)
    offline = binary.source_for(offline=True)
    assert isinstance(offline, FirstOf)
    upstream, ours = offline.sources
    assert isinstance(upstream, GoSource)
    assert upstream.package == "github.com/BuoyantIO/faces-demo/v2/cmd/generic/smiley"
    assert upstream.version == "v2.0.0"
    assert isinstance(ours, GoSource)
    assert ours.local is not None
    assert (ours.local / "go.mod").is_file()


def test_ports_state_their_protocol() -> None:
    color = find_workload("color")
    grpc, metrics = color.ports
    assert (grpc.app_protocol, grpc.grpc_method) == ("grpc", "/ColorService/Center")
    assert (metrics.port, metrics.app_protocol) == (9090, "http")
    assert [p.probe_spec for p in color.ports] == ["8000=grpc:/ColorService/Center", "9090=http"]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (
            {"app_protocol": "h2"},
            r"ports\[0\]\.app_protocol: 'h2' is not one of: http, grpc, opaque",
        ),
        ({"grpc_method": "/S/M"}, r"only a port with app_protocol: grpc takes a grpc_method"),
        (
            {"app_protocol": "grpc", "grpc_method": "S.M"},
            r"grpc_method.*a full gRPC method name like /ColorService/Center",
        ),
    ],
)
def test_bad_port_protocols_are_refused(write_workload, port, message) -> None:
    extra = ", ".join(f"{key}: {value}" for key, value in port.items())
    entry = BASE.replace("protocol: TCP}", f"protocol: TCP, {extra}}}")
    with pytest.raises(CatalogError, match=message):
        write_workload(entry)


def test_offline_alternatives_must_not_be_empty(write_workload) -> None:
    entry = BASE + "binaries:\n  - {name: x, source: {file: {path: x}}, offline: []}\n"
    with pytest.raises(CatalogError, match=r"offline: give one source, or a list of alternatives"):
        write_workload(entry)


def test_unknown_workload_lists_known_ones() -> None:
    with pytest.raises(CatalogError, match=r"no workload 'nope'.*smiley"):
        find_workload("nope")


def test_minimal_valid_entry_loads(write_workload) -> None:
    workload = write_workload(BASE)
    assert workload.ports[0].port == 8000
    assert workload.command == ("/bin/busybox", "httpd", "-f")


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("name: demo", "name: 'smiley; rm -rf /'", r"demo.yaml: name: .*not valid \(a DNS-1123"),
        ("name: demo", "name: '$(id)'", r"name: '\$\(id\)' is not valid"),
        ("name: demo", "name: Demo", r"name: 'Demo' is not valid"),
        ("namespace: faces", "namespace: 'fa ces'", r"namespace: 'fa ces' is not valid"),
        ("port: 8000", "port: 70000", r"ports\[0\]\.port: 70000 is out of range \(1-65535\)"),
        ("port: 8000", "port: 0", r"ports\[0\]\.port: 0 is out of range"),
        ("port: 8000", "port: '8000'", r"ports\[0\]\.port: expected a whole number"),
        ("name: http", "name: HTTP", r"ports\[0\]\.name: 'HTTP' is not valid \(an IANA"),
        ("protocol: TCP", "protocol: QUIC", r"protocol: 'QUIC' is not one of: TCP, UDP, SCTP"),
        ("uid: 2200", "uid: 0", r"user\.uid: 0 is out of range \(1000-65533\)"),
        ("packages: [busybox]", "packages: ['x; rm -rf /']", r"packages\[0\]: 'x; rm -rf /'"),
        (
            "namespace: faces",
            "namespace: faces\nlicenses: 'MIT; $(id)'",
            r"licenses: 'MIT; \$\(id\)' is not valid \(an SPDX license expression",
        ),
        (
            "command: [",
            "colour: red\ncommand: [",
            r"unknown field 'colour'; valid fields are: name",
        ),
    ],
)
def test_bad_entries_name_file_field_and_fix(write_workload, replace, by, message) -> None:
    assert replace in BASE
    with pytest.raises(CatalogError, match=message):
        write_workload(BASE.replace(replace, by, 1))


def test_file_name_must_match_workload_name(write_workload) -> None:
    with pytest.raises(CatalogError, match="must match the file name"):
        write_workload(BASE, name="other")


def test_duplicate_port_names_refused(write_workload) -> None:
    text = BASE.replace("protocol: TCP}", "protocol: TCP}\n  - {name: http, port: 9000}")
    with pytest.raises(CatalogError, match="port names must be unique"):
        write_workload(text)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ('env: {GREETING: "a\\nb"}', "control character"),
        ("env: {'BAD-NAME': x}", "not a valid variable name"),
        ("env: {LINKERD2_PROXY_LOG: debug}", "reserved for the proxy"),
        ("env: [A, B]", "expected a mapping"),
    ],
)
def test_bad_environment_refused(write_workload, env, message) -> None:
    with pytest.raises(CatalogError, match=message):
        write_workload(BASE + env + "\n")


def test_command_and_dispatch_are_exclusive(write_workload) -> None:
    text = BASE + "dispatch: {env: X, default: a, commands: {a: [/bin/true]}}\n"
    with pytest.raises(CatalogError, match="either command or dispatch"):
        write_workload(text)


def test_workload_needs_a_source(write_workload) -> None:
    with pytest.raises(CatalogError, match=r"give binaries, debian\.packages or from"):
        write_workload(BASE.replace("debian: {packages: [busybox]}\n", ""))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{image: {ref: 'Bad Ref', path: /x}}", "not valid \\(an image reference"),
        ("{image: {ref: a/b:1, path: relative}}", "not valid \\(an absolute path"),
        ("{url: {url: 'http://x/y', sha256: " + "a" * 64 + "}}", "must start with https://"),
        ("{url: {url: 'https://x/y', sha256: abc}}", "64 lowercase hex"),
        ("{go: {package: ./cmd/x}}", "either version .* or local"),
        ("{go: {package: x.io/y, version: latest}}", "semver tag"),
        ("{file: {path: a}, go: {package: x}}", "exactly one source kind"),
        ("{ftp: {path: a}}", "unknown field 'ftp'"),
    ],
)
def test_bad_sources_refused(write_workload, source, message) -> None:
    text = BASE.replace(
        "debian: {packages: [busybox]}\n", f"binaries:\n  - name: app\n    source: {source}\n"
    )
    with pytest.raises(CatalogError, match=message):
        write_workload(text)


def test_a_catalog_of_ones_own_adds_and_overrides(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    new_workload_file(name="hello", folder=mine)
    new_workload_file(name="smiley", folder=mine)  # same name as a built-in entry
    heard = []
    catalog = load_catalog([mine], on_override=heard.append)
    assert catalog["hello"].namespace == "default"
    assert catalog["smiley"].debian_packages == ("busybox",)  # the user's, not Faces'
    assert "color" in catalog  # the built-in ones stay
    assert [(o.name, o.path, o.replaced.name) for o in heard] == [
        ("smiley", mine / "smiley.yaml", "smiley.yaml")
    ]


def test_a_missing_catalog_folder_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no such catalog folder.*workloads new NAME"):
        find_workload("hello", [tmp_path / "nope"])


def test_the_starting_entry_is_valid_and_never_overwritten(tmp_path: Path) -> None:
    path = new_workload_file(name="edge-agent", folder=tmp_path)
    assert load_workload_file(path).command[:2] == ("/bin/busybox", "httpd")
    assert "# binaries:" in path.read_text()  # the other ways are there, commented
    path.write_text(path.read_text() + "# my edit\n")
    with pytest.raises(CatalogError, match="exists; edit it, or add --force"):
        new_workload_file(name="edge-agent", folder=tmp_path)
    assert path.read_text().endswith("# my edit\n")
    with pytest.raises(CatalogError, match="'x; rm -rf /' is not a workload name"):
        new_workload_file(name="x; rm -rf /", folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "catalog.schema.json",
        "edge-agent.yaml",
    ]  # nothing half-written


@pytest.mark.parametrize("name", sorted(load_catalog()))
def test_a_listed_entry_reads_back_as_the_same_workload(name: str, tmp_path: Path) -> None:
    """`workloads list -o json` writes each entry in the catalog's own shape (one model
    both reads and serves): read back, it is the workload that was listed."""
    workload = load_catalog()[name]
    listed = json.loads(json.dumps(workload.model_dump(mode="json")))
    again = read_workload(listed, "listed:", tmp_path)
    assert again.model_dump() == workload.model_dump()
    assert again.probe == workload.probe
    assert [binary.source_for(True) for binary in again.binaries] == [
        binary.source_for(True) for binary in workload.binaries
    ]
