"""What the service tells its operators: a request id on every answer and log line, an
access log, and Prometheus metrics.

:class:`Observe` is a plain ASGI middleware (no response buffering, no thread):
per request it reads or makes the request id, times the answer, counts it by
route template and status, and writes one access-log line. Pool use and tile
cache counts are read only when ``/metrics`` is scraped, so they cost a
request nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadastre.logs import request_id

log = logging.getLogger("cadastre.api")
access = logging.getLogger("cadastre.access")

#: An incoming X-Request-ID is kept when it is short and plain; otherwise a new one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
HEADER = b"x-request-id"
#: Methods counted by name; anything else is counted as "other" (bounded label values).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Latency buckets in seconds: cached tiles take well under a millisecond, reports seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def incoming_id(scope: Scope) -> str | None:
    """The request's own X-Request-ID when it is valid, else None."""
    for name, value in scope["headers"]:
        if name == HEADER:
            text = value.decode("latin-1")
            return text if REQUEST_ID.fullmatch(text) else None
    return None


class Metrics:
    """The service's Prometheus registry: request counts and latencies, pools, tile cache."""

    def __init__(self, state: State) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cadastre_http_requests",
            "Requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cadastre_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by method, route "
            "template and status.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(state))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:  # label lookups once per series, not per request
            labels = (method, route, str(status))
            found = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = found
        found[0].inc()
        found[1].observe(seconds)


class _StateCollector(Collector):
    """Connection pools and the tile cache, read at scrape time."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        out = GaugeMetricFamily(
            "cadastre_db_pool_checked_out",
            "Connections in use, by pool (primary: transactions; reader: tiles).",
            labels=["pool"],
        )
        size = GaugeMetricFamily(
            "cadastre_db_pool_size",
            "Connections a pool keeps (overflow comes on top).",
            labels=["pool"],
        )
        idle = GaugeMetricFamily(
            "cadastre_db_pool_checked_in", "Open connections waiting in a pool.", labels=["pool"]
        )
        db = getattr(self.state, "db", None)
        if db is not None:
            for name, engine in (("primary", db.engine), ("reader", db.reader)):
                pool = engine.pool
                if hasattr(pool, "checkedout"):
                    out.add_metric([name], pool.checkedout())
                    size.add_metric([name], pool.size())
                    idle.add_metric([name], pool.checkedin())
        yield from (out, size, idle)
        cache = getattr(self.state, "tile_cache", None)
        if cache is not None:
            yield CounterMetricFamily(
                "cadastre_tile_cache_hits", "Tiles answered from memory.", value=cache.hits
            )
            yield CounterMetricFamily(
                "cadastre_tile_cache_misses", "Tiles made by PostGIS.", value=cache.misses
            )
            yield GaugeMetricFamily(
                "cadastre_tile_cache_bytes", "Bytes charged to the tile cache.", value=cache.nbytes
            )
            yield GaugeMetricFamily(
                "cadastre_tile_cache_entries", "Tiles held in memory.", value=len(cache)
            )


class Observe:
    """Request id, access log and request metrics, around the whole application."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        sent = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = True
                message["headers"] = [*message.get("headers", ()), (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not sent:  # the same body as every other error, with the request id
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                body = json.dumps({"code": "internal_error", "detail": "internal error"})
                await send({"type": "http.response.body", "body": body.encode()})
            raise
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(method, route, status, seconds)
            if self.access_log:
                access.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    seconds * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
            request_id.reset(token)
