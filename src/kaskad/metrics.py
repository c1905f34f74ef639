"""Prometheus metrics, one registry per gateway so tests can run several side by side."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Children:
    """Label children looked up once: `labels()` costs more than the increment itself."""

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, *labels: str) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        child.inc()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.api_requests = Counter("kaskad_api_requests", "API requests by endpoint and result",
                                    ["endpoint", "result"], registry=self.registry)
        self.api_latency = Histogram("kaskad_api_latency_seconds", "API answer time",
                                     ["endpoint"], registry=self.registry,
                                     buckets=(.002, .005, .01, .02, .03, .05, .1, .25, .5, 1, 3))
        self.verification_changes = Counter("kaskad_verification_states",
                                            "Verification state changes by new state",
                                            ["state"], registry=self.registry)
        self.callbacks = Counter("kaskad_callbacks", "Callback tries by result", ["result"],
                                 registry=self.registry)
        self.write_batches = Gauge("kaskad_write_batches", "Group commits since start",
                                   registry=self.registry)
        self.write_items = Gauge("kaskad_write_items", "Writes group-committed since start",
                                 registry=self.registry)
        self.write_coalescing = Gauge("kaskad_write_coalescing",
                                      "1 while saturated: small group commits wait for more",
                                      registry=self.registry)
        self.backlog = Gauge("kaskad_engine_backlog", "Steps queued or running on this node",
                             registry=self.registry)
        self.api_results = Children(self.api_requests)
        self.state_changes = Children(self.verification_changes)
        self.steps_run = Gauge("kaskad_engine_steps", "Cascade steps run since start",
                               registry=self.registry)
        self.channel_healthy = Gauge("kaskad_channel_healthy",
                                     "1 when a channel is usable, 0 when unhealthy or paused",
                                     ["channel"], registry=self.registry)
        self.telegram = Gauge("kaskad_telegram_events", "Telegram channel events since start",
                              ["event"], registry=self.registry)
