"""What a build is asked for: the catalog entries and the settings file as validated
models (pydantic, in schema.py), the mesh contract's fixed values, SVID names and the
patterns that values reaching shell scripts must match.

It may import builder.core only; it reads YAML but talks to no outside system.
"""
