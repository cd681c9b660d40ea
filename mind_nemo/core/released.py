"""The released Nemotron-MIND naming, and the one table that maps it to ours.

NVIDIA's release stores each style in an upper-case folder (``TWO_STUDENTS/``, ...) with the
columns ``Text``, ``Conversational Style`` and ``Document ID``; our runs use snake_case
(``text``, ``conversational_style``, ``document_id``, style ``two_students``). The merge writes
either naming, the corpus reader takes ``Text`` as the text column and the filter reads rows in
either naming; all of them use the tables below, so the two namings cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from mind_nemo.core.styles import ALL_STYLES

#: Our record field -> the released column name, in the release's column order.
RELEASED_COLUMNS: dict[str, str] = {
    "text": "Text",
    "conversational_style": "Conversational Style",
    "document_id": "Document ID",
}
#: Our style name -> the released folder name (also the released ``Conversational Style``
#: value we write). ``REPHRASE`` is ours: the release has no rephrase baseline.
RELEASED_STYLES: dict[str, str] = {style: style.upper() for style in ALL_STYLES}
_OUR_STYLES: dict[str, str] = {released: ours for ours, released in RELEASED_STYLES.items()}
#: A released row carries no context index; it is read as context 0 of its Document ID.
RELEASED_CONTEXT_INDEX = 0


def released_style(style: str) -> str:
    """The released folder name of one of our styles (an unknown style: upper-cased)."""
    return RELEASED_STYLES.get(style, style.upper())


def our_style(value: str) -> str:
    """Our name for a released style value (``TWO_STUDENTS``, ``Two Students``); any other
    value is returned unchanged, so the filter counts it under its own name."""
    key = value.strip().upper().replace(" ", "_").replace("-", "_")
    return _OUR_STYLES.get(key, value)


def naming_of(row: dict[str, Any]) -> str | None:
    """``ours``, ``released``, ``both`` (ambiguous) or None (neither) for one row's keys."""
    ours = any(name in row for name in RELEASED_COLUMNS)
    released = any(name in row for name in RELEASED_COLUMNS.values())
    if ours and released:
        return "both"
    return "ours" if ours else "released" if released else None


def from_released(row: dict[str, Any]) -> dict[str, Any]:
    """A row in the released naming with our field names (other rows are returned as they are).

    ``Text`` -> ``text``, ``Conversational Style`` -> ``conversational_style`` (the value mapped
    by :func:`our_style`), ``Document ID`` -> ``document_id``; ``context_index`` is
    :data:`RELEASED_CONTEXT_INDEX` unless the row has one; every other column is kept.
    """
    if naming_of(row) != "released":
        return row
    mapped = {k: v for k, v in row.items() if k not in RELEASED_COLUMNS.values()}
    for ours, released in RELEASED_COLUMNS.items():
        if released in row:
            mapped[ours] = row[released]
    style = mapped.get("conversational_style")
    if isinstance(style, str):
        mapped["conversational_style"] = our_style(style)
    mapped.setdefault("context_index", RELEASED_CONTEXT_INDEX)
    return mapped
