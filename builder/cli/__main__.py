"""`python -m builder.cli`: the same as the `meshexp-build` command."""

from __future__ import annotations

from builder.cli.main import main

main()
