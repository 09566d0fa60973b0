"""Prometheus metrics, on a port of their own (setting ``metrics_port``; off by default).

They are served apart from the API, by ``prometheus-client``'s own HTTP server on a
background thread, so they are never exposed where the API is unless an operator binds
them there. Labels are route templates, never paths, user ids or tokens: a metric says how
the server is doing, not who is using it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clearpost.server.services.stats import Stats, StatsService

log = logging.getLogger("clearpost.metrics")
SCRAPE_TIMEOUT_SECONDS = 5.0


class _Figures(Collector):
    """Reads the service figures at scrape time, on the server's event loop."""

    def __init__(self, stats: StatsService, loop: asyncio.AbstractEventLoop) -> None:
        self.stats, self.loop = stats, loop

    def collect(self) -> Iterator[Metric]:
        try:
            future = asyncio.run_coroutine_threadsafe(self.stats.snapshot(), self.loop)
            s: Stats = future.result(SCRAPE_TIMEOUT_SECONDS)
        except Exception as exc:  # a scrape must not take the server down
            log.warning("metrics: could not read the figures (%s)", type(exc).__name__)
            return
        yield CounterMetricFamily(
            "clearpost_messages_sent", "Messages stored by this process.", value=s.messages_sent
        )
        yield GaugeMetricFamily(
            "clearpost_sync_waiters",
            "Syncs and streams of this process waiting for something new.",
            value=s.sync_waiters,
        )
        yield GaugeMetricFamily(
            "clearpost_log_entries", "Entries appended to the transparency log.", s.log_appended
        )
        yield GaugeMetricFamily(
            "clearpost_log_checkpoint_size",
            "The size of the log's latest signed checkpoint.",
            value=s.log_integrated,
        )
        yield GaugeMetricFamily(
            "clearpost_log_sequencer_lag_entries",
            "Entries appended but not yet covered by a signed checkpoint.",
            value=s.sequencer_lag_entries,
        )
        if s.checkpoint_age_seconds is not None:
            yield GaugeMetricFamily(
                "clearpost_log_checkpoint_age_seconds",
                "Seconds since the latest checkpoint was signed.",
                value=s.checkpoint_age_seconds,
            )
        yield GaugeMetricFamily(
            "clearpost_keydir_leaves",
            "Versions in this process's key-directory tree (in memory, about 150 bytes each).",
            value=s.keydir_leaves,
        )
        if s.keydir_epoch_age_seconds is not None:
            yield GaugeMetricFamily(
                "clearpost_keydir_epoch_age_seconds",
                "Seconds since the key directory's latest epoch was published.",
                value=s.keydir_epoch_age_seconds,
            )
        yield CounterMetricFamily(
            "clearpost_reports_released",
            "Partner reports released (all processes of this database).",
            value=s.reports_released,
        )


class Metrics:
    """One server process's registry, its request histogram and its exporter thread."""

    def __init__(self, stats: StatsService, loop: asyncio.AbstractEventLoop) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "clearpost_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
        )
        self.registry.register(_Figures(stats, loop))
        self._server: WSGIServer | None = None

    def start(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
