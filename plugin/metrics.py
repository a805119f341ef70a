"""hotfuse's counters as Prometheus metrics on the engine's own `/metrics` endpoint (prometheus_client).

Kernels run in engine worker / scheduler processes, `/metrics` is served by another one (vLLM's API
server, SGLang's tokenizer manager), so the numbers have to cross processes. Each engine's own convention
is followed:

- `PROMETHEUS_MULTIPROC_DIR` set (SGLang with `--enable-metrics`; vLLM with several API servers, or set by
  the operator): prometheus_client's multiprocess mode. Every process holds real Counter / Gauge objects,
  updated from hotfuse's host counters by the report thread once a second (never on the kernel call path),
  and the endpoint's MultiProcessCollector adds them up.
- otherwise (vLLM's default single API server): the endpoint serves prometheus_client's default registry
  of its own process. hotfuse registers a collector there that reads, at scrape time, the per-process
  reports every hotfuse process writes into the shared report directory (`HOTFUSE_REPORT_DIR`; when the
  operator did not set one, the first process creates a private one and its engine children inherit it).

Metrics (labels: fusion, process = "<process title> <pid>"):
  hotfuse_fused_calls_total, hotfuse_fallback_calls_total{reason}, hotfuse_shadow_checks_total,
  hotfuse_shadow_mismatches_total, hotfuse_self_check{kernel, result} (1), hotfuse_fusion_tripped (0/1),
  hotfuse_fusion_state{state} (1).
"""

from __future__ import annotations

import glob
import json
import os

PREFIX = "hotfuse_"


def available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def process_label(doc: dict) -> str:
    process = doc.get("process") or {}
    title = (process.get("title") or "").split(" ")[0]
    if not title or title.startswith("/"):
        title = process.get("name") or "process"
    return f"{title} {process.get('pid')}"


def samples(doc: dict) -> list[tuple[str, str, dict, float]]:
    """(metric, type, labels, value) for one process report."""
    proc = process_label(doc)
    out = []
    for fusion, counts in (doc.get("counters") or {}).items():
        base = {"fusion": fusion, "process": proc}
        out.append(("fused_calls_total", "counter", base, counts.get("fused", 0)))
        for reason, n in counts.get("fallbacks", {}).items():
            out.append(("fallback_calls_total", "counter", {**base, "reason": reason}, n))
    for fusion, safe in (doc.get("safety") or {}).items():
        base = {"fusion": fusion, "process": proc}
        out.append(("shadow_checks_total", "counter", base, safe.get("shadow_checks", 0)))
        out.append(("shadow_mismatches_total", "counter", base, safe.get("shadow_mismatches", 0)))
        out.append(("fusion_tripped", "gauge", base, 1.0 if safe.get("tripped") else 0.0))
        for kernel, result in safe.get("self_check", {}).items():
            out.append(("self_check", "gauge", {**base, "kernel": kernel, "result": result.split(":")[0]}, 1.0))
    for fusion, info in (doc.get("fusions") or {}).items():
        out.append(("fusion_state", "gauge", {"fusion": fusion, "process": proc, "state": info["state"]}, 1.0))
    return out


_HELP = {
    "fused_calls_total": "Calls that ran hotfuse's fused kernel",
    "fallback_calls_total": "Calls that ran the reference path, by reason",
    "shadow_checks_total": "Fused calls also run through the reference and compared (HOTFUSE_SHADOW)",
    "shadow_mismatches_total": "Shadow comparisons outside the tolerance",
    "fusion_tripped": "1 when the fusion fell back to its reference path in this process",
    "self_check": "Start-up self-check of a kernel (result label: passed or failed)",
    "fusion_state": "State of the fusion in this process (state label)",
}
_LABELS = {
    "fused_calls_total": ("fusion", "process"), "fallback_calls_total": ("fusion", "process", "reason"),
    "shadow_checks_total": ("fusion", "process"), "shadow_mismatches_total": ("fusion", "process"),
    "fusion_tripped": ("fusion", "process"), "self_check": ("fusion", "process", "kernel", "result"),
    "fusion_state": ("fusion", "process", "state"),
}


class ReportCollector:
    """Scrape-time collector over every hotfuse process report in a directory (single-registry mode)."""

    def __init__(self, directory: str):
        self.directory = directory

    def describe(self):
        return []   # names are only known at scrape time; nothing to check at registration

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {}
        for path in sorted(glob.glob(os.path.join(self.directory, "*.json"))):
            try:
                with open(path) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                continue
            for name, kind, labels, value in samples(doc):
                if name not in families:
                    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                    metric = name.removesuffix("_total") if kind == "counter" else name
                    families[name] = cls(PREFIX + metric, _HELP[name], labels=_LABELS[name])
                families[name].add_metric([labels[k] for k in _LABELS[name]], value)
        yield from families.values()


_collector: ReportCollector | None = None


def register_collector(directory: str) -> None:
    """Put the report collector in this process's default prometheus registry (idempotent)."""
    global _collector
    if _collector is not None or multiprocess_mode() or not available():
        return
    from prometheus_client import REGISTRY

    _collector = ReportCollector(directory)
    REGISTRY.register(_collector)


class MultiprocessExporter:
    """prometheus_client objects of this process, advanced to the host counters' values (multiprocess mode)."""

    def __init__(self):
        from prometheus_client import Counter, Gauge

        self.metrics = {}
        for name, labels in _LABELS.items():
            if name.endswith("_total"):
                self.metrics[name] = Counter(PREFIX + name.removesuffix("_total"), _HELP[name], labels)
            else:
                self.metrics[name] = Gauge(PREFIX + name, _HELP[name], labels, multiprocess_mode="livemax")
        self.seen: dict[tuple, float] = {}

    def update(self, doc: dict) -> None:
        for name, kind, labels, value in samples(doc):
            child = self.metrics[name].labels(*[labels[k] for k in _LABELS[name]])
            if kind == "counter":
                key = (name,) + tuple(sorted(labels.items()))
                delta = value - self.seen.get(key, 0)
                if delta > 0:
                    child.inc(delta)
                    self.seen[key] = value
            else:
                child.set(value)
