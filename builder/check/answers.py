"""What Faces answers say: face's JSON answers through the GUI's Service, the smileys
and colours in them, their errors, and the shares a canary route gives.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

# What upstream Faces v2.0.0 answers (HTML entities inside JSON strings, Paul
# Tol's palette): our external smiley's default, and the face's fallbacks.
GRINNING = "&#x1F603;"


CURSING = "&#x1F92C;"


PALETTE = frozenset(
    (
        "#BBBBBB",
        "#000000",
        "#FFFFFF",
        "#4477AA",
        "#66CCEE",
        "#228833",
        "#CCBB44",
        "#EE6677",
        "#AA3377",
    )
)


def parse_answers(answers: list[str]) -> list[dict[str, Any]]:
    """The JSON objects among curl's answer lines (a failed request prints none)."""
    parsed = []
    for line in answers:
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                parsed.append(value)
    return parsed


def smiley_share(answers: list[str], smiley: str) -> float:
    """Share of all answers whose `smiley` field is `smiley` (an HTML entity)."""
    hits: int = sum(answer.get("smiley") == smiley for answer in parse_answers(answers))
    return hits / max(1, len(answers))


def face_trouble(answers: list[str]) -> list[str]:
    """Why face's answers are not healthy upstream answers: errors reported, a
    fallback smiley, a color outside the palette, or no JSON at all.
    """
    problems = []
    parsed = parse_answers(answers)
    if len(parsed) < len(answers):
        problems.append(f"{len(answers) - len(parsed)} of {len(answers)} answers were not JSON")
    for answer in parsed:
        if answer.get("errors"):
            problems.append("face reported errors: " + "; ".join(map(str, answer["errors"])))
        elif answer.get("smiley") == CURSING or answer.get("color") not in PALETTE:
            problems.append(f"not a healthy answer: {answer.get('smiley')} {answer.get('color')}")
    return problems
