"""What the metrics endpoint reports, gathered from the services and the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clearpost.core.clock import Clock
from clearpost.server.services.messages import MessageService
from clearpost.server.services.notifier import Notifier
from clearpost.storage.db import Database
from clearpost.storage.sql.stats import log_figures


@dataclass(frozen=True, slots=True)
class Stats:
    messages_sent: int
    """Messages this process stored since it started."""
    sync_waiters: int
    """Syncs and streams of this process waiting for something new."""
    log_appended: int
    log_integrated: int
    sequencer_lag_entries: int
    """Entries appended but not yet in a signed checkpoint."""
    checkpoint_age_seconds: float | None
    reports_released: int
    keydir_leaves: int
    """Versions in this process's key-directory tree (held in memory)."""
    keydir_epoch_age_seconds: float | None
    """Seconds since the key directory's latest epoch was published."""


class StatsService:
    def __init__(
        self, db: Database, messages: MessageService, notifier: Notifier, clock: Clock
    ) -> None:
        self.db, self.messages, self.notifier, self.clock = db, messages, notifier, clock
        self.keydir_leaves: Callable[[], int] = lambda: 0
        """Set by the container: the key-directory tree's size in this process."""

    def _age(self, at_ms: int | None) -> float | None:
        return None if at_ms is None else max(0.0, (self.clock.now_ms() - at_ms) / 1000)

    async def snapshot(self) -> Stats:
        figures = await self.db.run_read(log_figures)
        return Stats(
            messages_sent=self.messages.sent,
            sync_waiters=self.notifier.waiting(),
            log_appended=figures.appended,
            log_integrated=figures.integrated,
            sequencer_lag_entries=max(0, figures.appended - figures.integrated),
            checkpoint_age_seconds=self._age(figures.checkpoint_at_ms),
            reports_released=figures.reports_released,
            keydir_leaves=self.keydir_leaves(),
            keydir_epoch_age_seconds=self._age(figures.keydir_epoch_at_ms),
        )
