"""The shape the code keeps (issue "One name for each contract"): one place names the
image's labels, one place computes deadlines, no function over 80 lines, and a module
over 400 lines says in its docstring why it is one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parents[2] / "builder"
MODULES = sorted(BUILDER.rglob("*.py"))
LONGEST_FUNCTION = 80
LONGEST_MODULE = 400


def relative(path: Path) -> str:
    return str(path.relative_to(BUILDER.parent))


def test_only_the_contract_module_spells_a_label() -> None:
    spelled = [
        relative(path)
        for path in MODULES
        if re.search(r"\"io\.meshexp\.", path.read_text())
        and path != BUILDER / "core" / "image_contract.py"
    ]
    assert spelled == []


# Where an image of ours keeps its parts: spelled in image_contract only (docstrings may
# say it), and the image's own templates take it from there (`paths.*`).
IN_IMAGE_PATH = re.compile(
    r"/opt/workload|/opt/meshexp|/etc/meshexp|/usr/local/bin/(bootstrap|run-proxy|meshexp-|spire-)"
)
IMAGE_TEMPLATES = (
    "dockerfile/Dockerfile.j2",
    "bootstrap/bootstrap.sh.j2",
    "bootstrap/launch.sh.j2",
)
IMAGE_TEMPLATES += ("run-proxy/run-proxy.sh.j2",)


def _code_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_only_the_contract_module_spells_where_an_image_keeps_its_parts() -> None:
    spelled = [
        relative(path)
        for path in MODULES
        if path != BUILDER / "core" / "image_contract.py"
        and any(IN_IMAGE_PATH.search(text) for text in _code_strings(path))
    ]
    spelled += [
        name
        for name in IMAGE_TEMPLATES
        if IN_IMAGE_PATH.search((BUILDER.parent / name).read_text())
    ]
    assert spelled == []


def test_only_core_computes_a_deadline() -> None:
    """Waiting is core.wait's (and core's own helpers'): nowhere else adds to the clock."""
    computing = [
        relative(path)
        for path in MODULES
        if "time.monotonic() +" in path.read_text() and path.parent != BUILDER / "core"
    ]
    assert computing == []


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_functions_stay_short(path: Path) -> None:
    tree = ast.parse(path.read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION
    ]
    assert long == []


LONG_MODULES = [path for path in MODULES if len(path.read_text().splitlines()) > LONGEST_MODULE]


@pytest.mark.parametrize("path", LONG_MODULES, ids=relative)
def test_a_long_module_says_why(path: Path) -> None:
    docstring = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    assert "over 400 lines" in docstring, "say in the module's docstring why it is one module"
