"""Reading the Faces GUI's grid from the DOM Chromium dumps (shaped as the GUI builds it)."""

from __future__ import annotations

from builder.check.browser import grid_cells, rgb


def cell(row: int, column: int, smiley: str, background: str) -> str:
    return (
        f'<div id="cell-{row}-{column}" class="cell" style="background: {background}; '
        f'opacity: 1; border-color: rgb(187, 187, 187);"><span id="smiley-{row}-{column}" '
        f'class="cell-smiley">{smiley}</span><div id="cell-count-{row}-{column}" '
        'class="cell-count"></div></div>'
    )


KEY = (
    '<div id="key-1"><div id="key-cell-1" style="background: rgb(170, 51, 119)">'
    '<span id="key-smiley-1">\U0001f615</span></div></div>'
)


def test_the_grid_is_read_cell_by_cell_and_the_key_is_left_out() -> None:
    cells = [
        cell(row, column, "\U0001f603" if (row + column) % 2 else "&#x1F60D;", rgb("#66CCEE"))
        for row in range(4)
        for column in range(4)
    ]
    dom = f"<html><body><div id='grid'>{''.join(cells)}</div>{KEY}</body></html>"
    read = grid_cells(dom)
    assert len(read) == 16
    assert (read[0].row, read[0].column, read[0].smiley) == (0, 0, "\U0001f60d")
    assert read[1].smiley == "\U0001f603"
    assert {c.background for c in read} == {"rgb(102, 204, 238)"}


def test_colours_are_written_as_the_browser_writes_them() -> None:
    assert rgb("#66CCEE") == "rgb(102, 204, 238)"
    assert rgb("228833") == "rgb(34, 136, 51)"
