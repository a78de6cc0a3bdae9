"""Where the shipped data lives: the templates, the catalog and the Go sources.

In a wheel they sit inside the package (`builder/_data`); in a checkout they
are the top-level folders of the user's design, next to the package. Both are
found from the package itself, never from the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_FOLDERS = ("images", "bootstrap", "run-proxy", "dockerfile", "spire", "go", "kind")


def data_root() -> Path:
    """The folder holding images/, bootstrap/, run-proxy/, dockerfile/, spire/ and go/."""
    packaged = Path(str(resources.files("builder"))) / "_data"
    if packaged.is_dir():
        return packaged
    return Path(str(resources.files("builder"))).parent


def catalog_dir() -> Path:
    return data_root() / "images"


def go_dir() -> Path:
    return data_root() / "go"
