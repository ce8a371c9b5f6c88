"""``GET /metrics``: the server's metrics in the Prometheus text format, made by
``prometheus_client`` from a :class:`~sessions.metrics.ProcessMetrics` (this process's,
or every process's added up) read at each scrape. Behind the admin token unless
``[http] metrics_public`` is on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sessions.metrics import Buckets, ProcessMetrics

__all__ = ["METRIC_NAMES", "histogram_names", "metrics_router"]

MetricsSource = Callable[[], ProcessMetrics]

#: Every metric family exported (as Prometheus names its samples' base name).
METRIC_NAMES = (
    "rtmp_ingest_live_sessions",
    "rtmp_ingest_connections",
    "rtmp_ingest_store_pending_writes",
    "rtmp_ingest_publishes_total",
    "rtmp_ingest_received_bytes_total",
    "rtmp_ingest_stream_received_bytes_total",
    "rtmp_ingest_segments_written_total",
    "rtmp_ingest_store_dropped_writes_total",
    "rtmp_ingest_segment_availability_seconds",
    "rtmp_ingest_event_loop_lag_seconds",
    "rtmp_ingest_store_write_seconds",
    "rtmp_ingest_transcode_lagging_sessions",
    "rtmp_ingest_webhook_deliveries_total",
    "rtmp_ingest_webhook_pending_deliveries",
)


def histogram_names() -> tuple[str, ...]:
    """The histograms among :data:`METRIC_NAMES` (their series end in ``_bucket``,
    ``_sum`` and ``_count``)."""
    return tuple(name for name in METRIC_NAMES if name.endswith("_seconds"))


class _IngestCollector(Collector):
    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        m = self.source()
        yield GaugeMetricFamily(
            "rtmp_ingest_live_sessions", "Sessions live now.", value=m.live_sessions
        )
        yield GaugeMetricFamily(
            "rtmp_ingest_connections", "RTMP and RTMPS connections open now.", value=m.connections
        )
        yield GaugeMetricFamily(
            "rtmp_ingest_store_pending_writes",
            "Writes queued for the database and not landed yet.",
            value=m.pending_writes,
        )
        publishes = CounterMetricFamily(
            "rtmp_ingest_publishes",
            "Publishes accepted, and refused by reason.",
            labels=["result", "reason"],
        )
        publishes.add_metric(["accepted", ""], m.publishes_accepted)
        for reason, count in sorted(m.publishes_rejected.items()):
            publishes.add_metric(["rejected", reason], count)
        yield publishes
        yield CounterMetricFamily(
            "rtmp_ingest_received_bytes",
            "Bytes read from publishers' connections, every session (live ones so far).",
            value=m.received_bytes_total,
        )
        per_stream = CounterMetricFamily(
            "rtmp_ingest_stream_received_bytes",
            "Bytes read from publishers' connections, by stream name.",
            labels=["stream"],
        )
        for stream, count in sorted(m.received_bytes.items()):
            per_stream.add_metric([stream], count)
        yield per_stream
        yield CounterMetricFamily(
            "rtmp_ingest_segments_written",
            "HLS segments of the sources written.",
            value=m.segments_written,
        )
        yield CounterMetricFamily(
            "rtmp_ingest_store_dropped_writes",
            "Writes to the database dropped (failed in a way a retry cannot fix).",
            value=m.dropped_writes,
        )
        yield GaugeMetricFamily(
            "rtmp_ingest_transcode_lagging_sessions",
            "Live sessions whose renditions are behind real time (transcode_realtime open).",
            value=m.transcode_lagging,
        )
        deliveries = CounterMetricFamily(
            "rtmp_ingest_webhook_deliveries",
            "Webhook delivery attempts by result: delivered, retried (failed, tried again"
            " later), failed (given up).",
            labels=["result"],
        )
        for result in ("delivered", "retried", "failed"):
            deliveries.add_metric([result], m.webhook_deliveries.get(result, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "rtmp_ingest_webhook_pending_deliveries",
            "Webhook deliveries waiting to be made (as of the dispatcher's last look).",
            value=m.webhook_pending,
        )
        yield _histogram(
            "rtmp_ingest_segment_availability_seconds",
            "Seconds from a segment's last packet to its listing in the playlist.",
            m.availability,
        )
        yield _histogram(
            "rtmp_ingest_event_loop_lag_seconds",
            "How late the event loops' ticker woke (every 50 ms).",
            m.loop_lag,
        )
        yield _histogram(
            "rtmp_ingest_store_write_seconds",
            "Seconds each write to the database took.",
            m.store_writes,
        )


def _histogram(name: str, documentation: str, buckets: Buckets) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=buckets.cumulative(), sum_value=buckets.total
    )


def metrics_router(source: MetricsSource) -> APIRouter:
    """The ``/metrics`` route, with its own registry (never the library's global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_IngestCollector(source))
    router = APIRouter(tags=["system"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
