"""Figures an operator watches (metrics): the log's progress, the key directory's latest
epoch and report releases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from clearpost.storage.schema import keydir_epochs, reports, tlog_checkpoints, tlog_state


@dataclass(frozen=True, slots=True)
class LogFigures:
    appended: int
    """Entries appended (sequenced or waiting)."""
    integrated: int
    """The size of the latest signed checkpoint."""
    checkpoint_at_ms: int | None
    reports_released: int
    keydir_epoch_at_ms: int | None
    """When the key directory's latest epoch was published."""


def log_figures(conn: Connection) -> LogFigures:
    appended = conn.execute(select(tlog_state.c.next_index).where(tlog_state.c.id == 1)).scalar()
    latest = conn.execute(
        select(tlog_checkpoints.c.size, tlog_checkpoints.c.created_at)
        .order_by(tlog_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    released = conn.execute(select(func.count()).select_from(reports)).scalar()
    epoch_at = conn.execute(  # the latest epoch by its primary key: no scan at each scrape
        select(keydir_epochs.c.created_at).order_by(keydir_epochs.c.epoch.desc()).limit(1)
    ).scalar()
    return LogFigures(
        appended=int(appended or 0),
        integrated=int(latest[0]) if latest else 0,
        checkpoint_at_ms=int(latest[1]) if latest else None,
        reports_released=int(released or 0),
        keydir_epoch_at_ms=None if epoch_at is None else int(epoch_at),
    )
