"""The one module that imports jinja2: loads the shipped templates and renders them.

Templates are found through the package (see resources.py), never through
the current directory, and cannot reach files outside their roots.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import jinja2

from builder.core.errors import RenderError
from builder.core.resources import data_root

TEMPLATE_ROOTS = ("bootstrap", "run-proxy", "dockerfile", "spire")


def hcl_string(value: object) -> str:
    """A double-quoted HCL string (HCL shares JSON's string escapes)."""
    return json.dumps(str(value))


def dockerfile_string(value: object) -> str:
    """A double-quoted Dockerfile word; `$` is escaped so no variable is substituted."""
    return json.dumps(str(value), ensure_ascii=False).replace("$", "\\$")


def array_word(value: object) -> str:
    """One word of a bash array, quoted: also where shlex would leave it bare but it has
    an '=' (bash takes `a=b` in an array as the word it is, but a parser of the script
    sees an assignment; quoted, the script's shape never depends on the value)."""
    text = str(value)
    quoted = shlex.quote(text)
    if quoted == text and "=" in text:
        return f"'{text}'"
    return quoted


def _environment() -> jinja2.Environment:
    return _environment_for(data_root())


@functools.cache
def _environment_for(root: Path) -> jinja2.Environment:
    """One environment per template root: Jinja caches each compiled template in it."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(root / name) for name in TEMPLATE_ROOTS]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        # Bash uses `${#array[@]}`; keep `{#` free for it.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["shword"] = array_word
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["hcl"] = hcl_string
    env.filters["dockerfile_string"] = dockerfile_string
    return env


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render one template by its file name; a missing variable is an error, not ''."""
    try:
        return _environment().get_template(name).render(**context)
    except jinja2.UndefinedError as exc:
        raise RenderError(
            f"template {name}: {exc.message}; this is a bug in meshexp-build, please report it"
        ) from None
    except jinja2.TemplateNotFound:
        raise RenderError(
            f"template {name} is missing from {data_root()}; reinstall meshexp-build"
        ) from None
