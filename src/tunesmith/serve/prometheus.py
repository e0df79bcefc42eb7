"""The server's Prometheus metrics (prometheus-client), in a registry of the app's own, so two servers in one
process (tests) do not share counts.

Requests are counted by route and status, and timed to the last byte of the response, by an ASGI middleware
that watches what the app sends: a streamed answer's latency is its whole stream, not the moment its headers
left (what an ``http`` middleware built on ``call_next`` would see).
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/classify", "/v1/feedback", "/v1/models", "/health",
          "/ready", "/metrics", "/admin/reload")
"""Routes counted by name; any other path is counted as ``other`` (a label per unknown path would let any
client grow the metrics without bound)."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tunesmith_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("tunesmith_request_latency_seconds", "Time to the last byte of the response",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("tunesmith_time_to_first_token_seconds", "Time from arrival to the first generated token",
                              ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("tunesmith_prompt_tokens", "Prompt tokens of answered requests", ["model"],
                                     registry=r)
        self.completion_tokens = Counter("tunesmith_completion_tokens", "Generated tokens of answered requests",
                                         ["model"], registry=r)
        self.queue_depth = Gauge("tunesmith_queue_depth", "Requests waiting to join the batch", registry=r)
        self.active = Gauge("tunesmith_active_sequences", "Requests decoding now", registry=r)
        self.batch_size = Histogram("tunesmith_batch_size", "Rows of each decode step", buckets=BATCH_BUCKETS,
                                    registry=r)

    def watch_engine(self, engine) -> None:
        self.queue_depth.set_function(engine.queue_depth)
        self.active.set_function(engine.active)

    def answered(self, route: str, model: str, ttft: float | None, prompt_tokens: int, completion_tokens: int) -> None:
        if ttft is not None:
            self.ttft.labels(route).observe(ttft)
        self.prompt_tokens.labels(model).inc(prompt_tokens)
        self.completion_tokens.labels(model).inc(completion_tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def instrument(self, app) -> None:
        app.add_middleware(_CountRequests, metrics=self)


class _CountRequests:
    """ASGI middleware: counts and times every HTTP request at its response's last byte."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        started = time.monotonic()
        status = 500

        async def watching_send(message):
            nonlocal status  # the status arrives in the first message, the end in the last
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.requests.labels(route, str(status)).inc()
                self.metrics.latency.labels(route).observe(time.monotonic() - started)

        await self.app(scope, receive, watching_send)
