"""Multi-column look-ups that use the index on every database.

``tuple_(a, b).in_([...])`` is a full table scan on SQLite (its planner does not use an
index for a list of row values); an OR of ``a = ? AND b = ?`` terms uses the primary key
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_


def any_of(columns: Sequence[Any], values: Iterable[Sequence[Any]]) -> ColumnElement[bool]:
    """``(columns) = (values[0]) OR (columns) = (values[1]) OR ...``; false for no values."""
    terms = [and_(*(c == v for c, v in zip(columns, row, strict=True))) for row in values]
    return or_(*terms) if terms else false()
