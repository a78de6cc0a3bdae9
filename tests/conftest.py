"""Shared pytest options: golden-file regeneration, and CI's rule that Docker tests never skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.cluster.apiserver import APIServer, APIServerError, find_etcd, local_apiserver
from harness import equipment


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/ from the current templates (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def matches_golden(files: dict[str, tuple[str, int]], folder: Path, update: bool) -> None:
    """The rendered `files` are the golden ones in `folder` (rewritten first with
    --update-golden): the same names, the same text."""
    if update:
        shutil.rmtree(folder, ignore_errors=True)
        for relative, (text, _) in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
    expected = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert set(files) == expected, "files differ from golden; run pytest --update-golden"
    for relative, (text, _) in files.items():
        assert text == (folder / relative).read_text(), f"{relative} differs from golden"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip outside CI, fail in CI: CI has everything a test needs."""
    if not condition:
        if in_ci():
            pytest.fail(f"CI needs this: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServer]:
    """A real kube-apiserver and etcd on loopback, with Linkerd's CRDs (marker `kube`);
    or the API server MESHEXP_TEST_KUBECONFIG names (its CRDs are yours to apply).
    """
    given = os.environ.get("MESHEXP_TEST_KUBECONFIG")
    if given:
        yield APIServer(url="", kubeconfig=Path(given), folder=Path(given).parent, crds=())
        return
    need(equipment.LINKERD_CRDS.is_file(), f"Linkerd's CRDs at {equipment.LINKERD_CRDS}")
    try:
        find_etcd()
    except APIServerError as exc:
        need(False, str(exc.message))
    folder = tmp_path_factory.mktemp("apiserver")
    with local_apiserver(folder=folder, crds=(equipment.LINKERD_CRDS.read_text(),)) as server:
        yield server
