"""The JSON Schema of a catalog entry and of the settings file, from their models, for
YAML-aware editors (`meshexp-build schema catalog|settings`, images/catalog.schema.json).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from builder.config.models import SCHEMA_ID, Workload
from builder.config.settings import Settings
from builder.config.sources import SOURCE_TITLE

SOURCE_REF = {"$ref": f"#/$defs/{SOURCE_TITLE}"}


def _named_sources(node: Any, defs: dict[str, Any]) -> Any:
    """Every source's schema (written inline by the models) as one named definition."""
    if isinstance(node, list):
        return [_named_sources(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("title") == SOURCE_TITLE and node.get("type") == "object":
        defs[SOURCE_TITLE] = {**node, "description": "where a binary comes from: exactly one kind"}
        return {
            **SOURCE_REF,
            **({"description": node["description"]} if "description" in node else {}),
        }
    return {key: _named_sources(value, defs) for key, value in node.items()}


# What Workload's own check says of the two kinds of entry: one built here names its
# ports and its own non-root user; one from an image brings no binaries or packages.
BUILT_HERE_OR_FROM_AN_IMAGE = {
    "if": {"not": {"required": ["from"]}},
    "then": {
        "required": ["ports", "user"],
        "properties": {
            "ports": {"minItems": 1},
            "user": {"properties": {"uid": {"minimum": 1000}}},
        },
    },
    "else": {"not": {"anyOf": [{"required": ["binaries"]}, {"required": ["debian"]}]}},
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a catalog entry (`catalog`) or of the settings file."""
    models: dict[str, type[BaseModel]] = {"catalog": Workload, "settings": Settings}
    found: dict[str, Any] = {}
    schema = _named_sources(models[kind].model_json_schema(), found)
    schema.setdefault("$defs", {}).update(found)
    binary = schema["$defs"].get("Binary")
    if binary is not None:  # what the alternatives' reader also accepts: one mapping
        binary["properties"]["offline"] = {
            "description": "where it comes from offline: one source, or a list of "
            "alternatives tried in order (the first that can be had is used)",
            "anyOf": [SOURCE_REF, {"type": "array", "items": SOURCE_REF, "minItems": 1}],
        }
    if kind == "catalog":
        schema["allOf"] = [BUILT_HERE_OR_FROM_AN_IMAGE]
    titles = {"catalog": "meshexp-build catalog entry", "settings": "meshexp-build settings"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID.format(kind=kind),
        **schema,
        "title": titles[kind],
    }
