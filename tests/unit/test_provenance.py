"""OCI provenance labels: source, revision and created, as docker/metadata-action derives them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.build.provenance import created_at, https_source, provenance_labels


@pytest.mark.parametrize(
    ("remote", "source"),
    [
        ("git@github.com:acme/meshexp-build.git", "https://github.com/acme/meshexp-build"),
        ("https://github.com/acme/meshexp-build", "https://github.com/acme/meshexp-build"),
        # a token in the remote never reaches a label
        ("https://x-access-token:s3cr3t@github.com/acme/app.git", "https://github.com/acme/app"),
        ("ssh://git@gitlab.example.org:2222/team/app.git", "https://gitlab.example.org/team/app"),
        ("/srv/git/app.git", ""),
        ("file:///srv/git/app.git", ""),
    ],
)
def test_remote_becomes_an_https_source(remote: str, source: str) -> None:
    assert https_source(remote) == source


def test_created_honours_source_date_epoch() -> None:
    assert created_at({"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14T22:13:20Z"
    assert created_at({}).endswith("Z")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_labels_from_a_checkout_and_from_a_plain_folder(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert [name for name, _ in provenance_labels(plain)] == ["org.opencontainers.image.created"]

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git(checkout, "init", "-q")
    (checkout / "f").write_text("x")
    git(checkout, "add", "f")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one")
    git(checkout, "remote", "add", "origin", "https://tok:en@github.com/acme/app.git")
    labels = dict(provenance_labels(checkout))
    assert labels["org.opencontainers.image.revision"] == git(checkout, "rev-parse", "HEAD")
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/app"
    assert "tok" not in str(labels)
