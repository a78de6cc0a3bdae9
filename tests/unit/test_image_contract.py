"""The image's contract has one set of names (builder/core/image_contract.py): every
label a rendered Dockerfile carries under io.meshexp. is named there, every named one
is written, and every log line the tool waits for is one the bootstrap logs."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from builder.build.plan import plan_components
from builder.build.render import render_files
from builder.config.catalog import find_workload, load_catalog
from builder.config.settings import Settings
from builder.core import image_contract

ROOT = Path(__file__).parents[2]


def our_labels(dockerfile: str) -> set[str]:
    """The io.meshexp.* keys of the Dockerfile's LABEL instructions."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    keys = set()
    for line in joined.splitlines():
        if line.startswith("LABEL "):
            for word in shlex.split(line.removeprefix("LABEL ")):
                key = word.partition("=")[0]
                if key.startswith(image_contract.PREFIX):
                    keys.add(key)
    return keys


def written(workload: str, settings: Settings) -> set[str]:
    found = find_workload(workload)
    files = render_files(found, settings, components=plan_components(found, settings))
    return our_labels(files["Dockerfile"][0])


@pytest.mark.parametrize("workload", sorted(load_catalog()))
def test_every_label_an_image_carries_is_named_in_the_contract(workload: str) -> None:
    for settings in (Settings(), replace(Settings(), topology="production")):
        keys = written(workload, settings.check())
        unnamed = {
            key
            for key in keys
            if key not in image_contract.IMAGE_LABELS
            and not key.startswith(image_contract.SOURCE_PREFIX)
        }
        assert unnamed == set()


def test_every_named_label_is_written_by_some_build() -> None:
    """A name in the contract that no build writes is a reader waiting for nothing."""
    seen: set[str] = set()
    for workload in load_catalog():
        seen |= written(workload, Settings().check())
    # Written only by some builds: a proxy file (the stand-in's mark, the release it
    # says) and a base image from a registry (its digest).
    sometimes = {
        image_contract.PROXY_STANDIN,
        image_contract.PROXY_RELEASE,
        image_contract.BASE_IMAGE,
    }
    assert set(image_contract.IMAGE_LABELS) - seen - sometimes == set()


def test_every_log_line_the_tool_waits_for_is_logged_by_the_bootstrap() -> None:
    template = (ROOT / "bootstrap" / "bootstrap.sh.j2").read_text()
    assert "log() { printf 'bootstrap: %s\\n'" in template
    for line in image_contract.LOG_LINES:
        message = line.removeprefix("bootstrap: ")
        assert f'log "{message}' in template, line


def test_no_module_but_the_contract_spells_a_label_of_ours() -> None:
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "builder").rglob("*.py"))
        if path.name != "image_contract.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']io\.meshexp\.", line)
    ]
    assert spelled == []
