"""The GUI's screenshots show the faces as a person sees them: in colour. Debian's Chromium
(the e2e's browser) renders a face on a page written here, and the pixels are read."""

from __future__ import annotations

import colorsys
from pathlib import Path

import pytest
from PIL import Image

from builder.check import browser
from tests.conftest import need

FACES = "".join(("\U0001f603", "\U0001f60d", "\U0001f92c", "\u2639"))  # grinning ... frowning


def saturated_share(png: Path) -> float:
    """The share of the picture's non-white pixels that are clearly coloured."""
    with Image.open(png) as image:
        data = image.convert("RGB").tobytes()
    pixels = [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]
    inked = [p for p in pixels if min(p) < 230]
    coloured = [p for p in inked if colorsys.rgb_to_hsv(*(c / 255 for c in p))[1] > 0.4]
    return len(coloured) / max(1, len(inked))


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return browser.find_chromium()
    except browser.CheckError as exc:
        need(False, exc.message)
        raise


def test_the_faces_are_drawn_in_colour(chromium: str, tmp_path: Path) -> None:
    need(browser.TEXT_FONT.is_file(), f"a text font without emoji glyphs ({browser.TEXT_FONT})")
    page = tmp_path / "faces.html"
    page.write_text(
        '<html><body style="font-family: sans-serif; font-size: 96px; margin: 0">'
        f"{FACES}</body></html>",
        encoding="utf-8",
    )
    shot = browser.screenshot(page.as_uri(), tmp_path / "faces.png")
    # Monochrome glyphs (DejaVu's) have next to no saturated pixels; Noto's faces are yellow.
    assert saturated_share(shot) > 0.5, f"the faces are not in colour: see {shot}"
