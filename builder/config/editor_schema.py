"""The JSON Schema of a catalog entry and of the settings file, from their models, for
YAML-aware editors (`meshexp-build schema catalog|settings`, images/catalog.schema.json).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from builder.config.schema import SCHEMA_ID, WorkloadEntry
from builder.config.settings_schema import SettingsEntry


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a catalog entry (`catalog`) or of the settings file."""
    models: dict[str, type[BaseModel]] = {"catalog": WorkloadEntry, "settings": SettingsEntry}
    model = models[kind]
    schema = model.model_json_schema()
    binary = schema.get("$defs", {}).get("BinaryEntry")
    if binary is not None:  # what the alternatives' reader also accepts: one mapping
        source = {"$ref": "#/$defs/SourceEntry"}
        binary["properties"]["offline"] = {
            "description": "where it comes from offline: one source, or a list of "
            "alternatives tried in order (the first that can be had is used)",
            "anyOf": [source, {"type": "array", "items": source, "minItems": 1}],
        }
    titles = {"catalog": "meshexp-build catalog entry", "settings": "meshexp-build settings"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID.format(kind=kind),
        **schema,
        "title": titles[kind],
    }
