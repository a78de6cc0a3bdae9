"""Reading a file a user wrote (a catalog entry, a settings file, a group file) as
YAML, with limits: a size, UTF-8 text, a nesting depth, and no aliases.

An alias (`*name`) makes a few hundred bytes stand for millions of values (the
"billion laughs"), which pydantic would then walk and an error would print: none
of our files needs one, so they are refused where the parser meets them, before
anything is built. Every problem is one line naming the file, where in it, and
the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

from builder.core.errors import MeshexpError

MAX_BYTES = 1 << 20  # 1 MiB: the largest catalog entry we ship is under 2 KiB
MAX_DEPTH = 32  # a catalog entry nests 4 levels deep


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and nesting deeper than MAX_DEPTH."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark  # a pure-Python Mark: the SafeLoader has no C parser
        if isinstance(event, AliasEvent):
            raise ComposerError(
                None,
                None,
                f"an alias (*{event.anchor}) is not accepted here: write the value out",
                mark,
            )
        nests = isinstance(event, (MappingStartEvent, SequenceStartEvent))
        if nests:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels: flatten the document",
                    mark,
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self.depth -= 1


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a parser's error: what, and where (line and column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"[:300]


def read_yaml_file(path: Path, what: str, error: type[MeshexpError]) -> Any:
    """The YAML document in `path` (`what` it is, for the message), or `error` with one
    line: unreadable, too large, not UTF-8, not YAML, an alias, too deep."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise error(f"{path}: is a folder; give the {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise error(f"{path}: larger than {MAX_BYTES} bytes; a {what} is a small text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=LimitedLoader)  # LimitedLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
