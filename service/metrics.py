"""Request counters and latency histograms in the Prometheus text format (written by hand).

Counted per process: with several workers each one keeps its own numbers.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the latency histogram, in seconds."""


def _label(value: str) -> str:
    """Escape a label value (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counts requests by (method, route template, status) and their latency by route.

    Updated only from the event loop thread (the middleware), so it needs no lock.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.reloads: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request that took ``seconds``."""
        self.requests[(method, route, status)] += 1
        key = (method, route)
        counts = self.buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] += seconds

    def render(self, model_version: str | None, route_batches: tuple[int, int] = (0, 0)) -> str:
        """The metrics as Prometheus text exposition format (version 0.0.4).

        Args:
            model_version: the version serving, ``None`` when no model is loaded.
            route_batches: ``(batches, requests)`` routed so far by the route batcher.
        """
        lines = [
            "# HELP leadrank_requests_total HTTP requests by method, route and status.",
            "# TYPE leadrank_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(
                f'leadrank_requests_total{{method="{method}",route="{_label(route)}",'
                f'status="{status}"}} {n}'
            )
        lines += [
            "# HELP leadrank_request_duration_seconds HTTP request latency.",
            "# TYPE leadrank_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.buckets.items()):
            labels = f'method="{method}",route="{_label(route)}"'
            total = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    f'leadrank_request_duration_seconds_bucket{{{labels},le="{le}"}} {total}'
                )
            total_seconds = self.sums[(method, route)]
            lines.append(f"leadrank_request_duration_seconds_sum{{{labels}}} {total_seconds}")
            lines.append(f"leadrank_request_duration_seconds_count{{{labels}}} {total}")
        lines += [
            "# HELP leadrank_model_info The model version serving (1) in this process.",
            "# TYPE leadrank_model_info gauge",
        ]
        if model_version is not None:
            lines.append(f'leadrank_model_info{{version="{_label(model_version)}"}} 1')
        lines += [
            "# HELP leadrank_model_loaded Whether a model is loaded (1) or not (0).",
            "# TYPE leadrank_model_loaded gauge",
            f"leadrank_model_loaded {0 if model_version is None else 1}",
            "# HELP leadrank_model_reloads_total Model reloads by result.",
            "# TYPE leadrank_model_reloads_total counter",
        ]
        for result, n in sorted(self.reloads.items()):
            lines.append(f'leadrank_model_reloads_total{{result="{result}"}} {n}')
        lines += [
            "# HELP leadrank_route_batches_total Batches of concurrent route requests run.",
            "# TYPE leadrank_route_batches_total counter",
            f"leadrank_route_batches_total {route_batches[0]}",
            "# HELP leadrank_route_batched_requests_total Route requests run in those batches.",
            "# TYPE leadrank_route_batched_requests_total counter",
            f"leadrank_route_batched_requests_total {route_batches[1]}",
        ]
        return "\n".join(lines) + "\n"
