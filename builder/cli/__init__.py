"""The click layer: one module per verb group; each verb parses its options, calls one
library function and prints the result. Only this package imports click.

It may import every other package of builder; nothing imports it. Library errors
(builder.core.errors.MeshexpError) arrive here and become click's one-line
"Error: ..." with the error's exit code (see the README's table).
"""

from __future__ import annotations

from builder.cli.main import main

__all__ = ["main"]
