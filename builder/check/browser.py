"""The Faces GUI as a person sees it: Debian's Chromium, headless, loads the page, lets its
JavaScript run, and we read the grid it built (from the DOM) and keep a screenshot.

The one module that runs a browser. Each cell of the GUI's 4x4 grid is
`div#cell-R-C` (its inline `background` the colour) holding `span#smiley-R-C`
(the smiley character); the key beside the grid is not part of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from builder.core import process
from builder.core.errors import CheckError

# Virtual time for the page's JavaScript: each cell asks face every 2 s.
VIRTUAL_TIME_MS = 15000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # as root in CI; the page is our own GUI on a private network
    "--disable-gpu",
    "--hide-scrollbars",
    f"--virtual-time-budget={VIRTUAL_TIME_MS}",
)
GRID = 4


@dataclass(frozen=True)
class Cell:
    row: int
    column: int
    smiley: str
    background: str


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise CheckError(
        "the GUI check needs Chromium: install Debian's (apt-get install chromium "
        "fonts-noto-color-emoji fonts-liberation2; scripts/setup.sh --with browser does)"
    )


# DejaVu, the font Debian's Chromium picks for text, has monochrome glyphs for the faces,
# and a font that has a character is never asked to fall back: the faces are then black
# and white. Without DejaVu (when another text font is there), each face falls back to the
# colour emoji font, as on a person's desktop.
TEXT_FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf")
MONOCHROME_EMOJI_FONTS = "/usr/share/fonts/truetype/dejavu/*"
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont><rejectfont><glob>{reject}</glob></rejectfont></selectfont>
</fontconfig>
"""


def font_environment(profile: Path, text_font: Path = TEXT_FONT) -> dict[str, str]:
    """The environment for Chromium: the system's fonts, without DejaVu's monochrome faces
    where a text font without emoji glyphs is installed."""
    env = dict(os.environ)
    if text_font.is_file():
        conf = profile / "fonts.conf"
        conf.write_text(FONTS_CONF.format(reject=MONOCHROME_EMOJI_FONTS))
        env["FONTCONFIG_FILE"] = str(conf)
    return env


def _chromium(args: list[str], timeout: float = 120) -> str:
    with tempfile.TemporaryDirectory(prefix="meshexp-chromium-") as profile:
        return process.run(
            [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            what=f"chromium {args[0]}",
            env=font_environment(Path(profile)),
            timeout=timeout,
            error=CheckError,
        )


def page_dom(url: str) -> str:
    """The page's DOM after its JavaScript ran for VIRTUAL_TIME_MS of virtual time."""
    return _chromium(["--dump-dom", url])


def screenshot(url: str, target: Path) -> Path:
    """A 1280x900 PNG of the page, as a person would see it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _chromium([f"--screenshot={target.resolve()}", "--window-size=1280,900", url])
    if not target.is_file():
        raise CheckError(f"chromium wrote no screenshot at {target}")
    return target


class _GridParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.backgrounds: dict[tuple[int, int], str] = {}
        self.smileys: dict[tuple[int, int], str] = {}
        self._in_smiley: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        ident = found.get("id") or ""
        position = _position(ident)
        if position is None:
            return
        if ident.startswith("cell-") and tag == "div":
            self.backgrounds[position] = _style(found.get("style") or "").get("background", "")
        elif ident.startswith("smiley-") and tag == "span":
            self._in_smiley = position
            self.smileys[position] = ""

    def handle_data(self, data: str) -> None:
        if self._in_smiley is not None:
            self.smileys[self._in_smiley] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._in_smiley = None


def _position(ident: str) -> tuple[int, int] | None:
    parts = ident.split("-")
    if len(parts) != 3 or parts[0] not in ("cell", "smiley"):
        return None
    if not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def _style(style: str) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in style.split(";") if ":" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def grid_cells(dom: str) -> list[Cell]:
    """The grid's cells as the page drew them: smiley character and background colour."""
    parser = _GridParser()
    parser.feed(dom)
    return [
        Cell(row, column, parser.smileys.get((row, column), "").strip(), background)
        for (row, column), background in sorted(parser.backgrounds.items())
    ]


def rgb(hex_colour: str) -> str:
    """`#66CCEE` as a browser writes it in a style: `rgb(102, 204, 238)`."""
    value = hex_colour.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({red}, {green}, {blue})"
