"""Figures an operator watches (metrics): the log's progress and report releases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from clearpost.storage.schema import reports, tlog_checkpoints, tlog_state


@dataclass(frozen=True, slots=True)
class LogFigures:
    appended: int
    """Entries appended (sequenced or waiting)."""
    integrated: int
    """The size of the latest signed checkpoint."""
    checkpoint_at_ms: int | None
    reports_released: int


def log_figures(conn: Connection) -> LogFigures:
    appended = conn.execute(select(tlog_state.c.next_index).where(tlog_state.c.id == 1)).scalar()
    latest = conn.execute(
        select(tlog_checkpoints.c.size, tlog_checkpoints.c.created_at)
        .order_by(tlog_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    released = conn.execute(select(func.count()).select_from(reports)).scalar()
    return LogFigures(
        appended=int(appended or 0),
        integrated=int(latest[0]) if latest else 0,
        checkpoint_at_ms=int(latest[1]) if latest else None,
        reports_released=int(released or 0),
    )
