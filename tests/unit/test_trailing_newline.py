"""A newline (or another control character) never gets into a rendered file through a
catalog entry or a setting: Python's `$` matches before a final newline, so each of
these was accepted and escaped its line (issue 32's reproductions). Each is refused
with one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.catalog import load_workload_file
from builder.config.settings import load_settings
from builder.core.errors import MeshexpError

ENTRY = (
    "name: demo\nnamespace: {namespace}\nports:\n  - {{name: http, port: 8000}}\n"
    "user: {{name: {user}, uid: 2200}}\ndebian: {{packages: [{package}]}}\n"
    "command: [/bin/busybox, httpd, -f]\nenv: {{{env_key}: x}}\n"
    "readiness: {readiness}\n"
)
GOOD = {
    "namespace": "faces",
    "user": "workload",
    "package": "busybox",
    "env_key": "MODE",
    "readiness": "{http: {path: /}}",
}
BAD = {
    "namespace": '"faces\\n"',
    "user": '"workload\\n"',
    "package": '"busybox\\n", run, sudo, touch, x',
    "env_key": '"MODE\\n"',
    "readiness": '{exec: {command: ["/bin/true\\n", "touch x\\n", "#"]}}',
    "readiness-path": '{http: {path: "/\\n"}}',
    "readiness-separator": '{http: {path: "/a\\u2028b"}}',
}


def _entry(tmp_path: Path, **values: str) -> Path:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    path = folder / "demo.yaml"
    path.write_text(ENTRY.format(**(GOOD | values)))
    return path


def test_the_benign_entry_loads(tmp_path: Path) -> None:
    assert load_workload_file(_entry(tmp_path)).name == "demo"


@pytest.mark.parametrize("field", sorted(BAD))
def test_a_catalog_value_ending_in_a_newline_is_refused(tmp_path: Path, field: str) -> None:
    key = "readiness" if field.startswith("readiness") else field
    with pytest.raises(MeshexpError) as caught:
        load_workload_file(_entry(tmp_path, **{key: BAD[field]}))
    assert "\n" not in caught.value.message, caught.value.message
    assert "demo.yaml" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trust_domain", "root.linkerd.cluster.local\n"),
        ("proxy_version", "v2.359.0\n"),
        ("tag", "linkerd-{linkerd}\n"),
        ("image_name", "meshexp/{workload}\n"),
        ("base_image", "debian:bookworm-slim\n"),
        ("linkerd_version", "2.20\n"),
        ("labels", ("org.example.team\n=mesh",)),
        ("labels", ("org.example.team=mesh\n",)),
        ("labels", ("org.example.team=a\u2028b",)),
        ("mirrors", ("cr.l5d.io=registry.corp\n",)),
    ],
)
def test_a_setting_ending_in_a_newline_is_refused(field: str, value: object) -> None:
    with pytest.raises(MeshexpError) as caught:
        load_settings(None, {field: value})
    assert "\n" not in caught.value.message, caught.value.message
    assert field in caught.value.message
