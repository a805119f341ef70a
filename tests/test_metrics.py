"""hotfuse's Prometheus metrics in both of the engines' conventions, with the real prometheus_client.

Multiprocess mode (PROMETHEUS_MULTIPROC_DIR: SGLang with --enable-metrics, vLLM with several API servers):
an engine-side process advances real Counter / Gauge objects and the endpoint's MultiProcessCollector reads
them from another process. Single-registry mode (vLLM's default): a collector in the serving process reads
the process reports. The end-to-end scrape of vLLM's own /metrics is in tests/test_vllm_safety.py.
"""

import json
import os
import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from hotfuse import metrics

DOC = {
    "process": {"pid": 4242, "title": "sglang::scheduler_TP0", "name": "MainProcess"},
    "counters": {"sampler": {"fused": 7, "fallbacks": {"greedy batch": 3}}},
    "safety": {"sampler": {"tripped": None, "self_check": {"temperature_sample": "passed: max error 0"},
                           "shadow_checks": 2, "shadow_mismatches": 0, "worst_error": 0.0}},
    "fusions": {"sampler": {"state": "active"}},
}

ENGINE_SIDE = """
import json, sys
from hotfuse import metrics
doc = json.loads(sys.argv[1])
exporter = metrics.MultiprocessExporter()
exporter.update(doc)
doc["counters"]["sampler"]["fused"] += 5          # later refreshes add only what changed
exporter.update(doc)
"""


def scrape_lines(text: str, name: str) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + "{")}


def test_multiprocess_mode_counts_cross_the_process_boundary(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", ENGINE_SIDE, json.dumps(DOC)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()
    fused = scrape_lines(text, "hotfuse_fused_calls_total")
    assert list(fused.values()) == [12.0] and 'process="sglang::scheduler_TP0 4242"' in next(iter(fused))
    assert list(scrape_lines(text, "hotfuse_fallback_calls_total").values()) == [3.0]
    assert list(scrape_lines(text, "hotfuse_shadow_checks_total").values()) == [2.0]
    assert any('result="passed"' in k for k in scrape_lines(text, "hotfuse_self_check"))


def test_single_registry_collector_reads_every_process_report(tmp_path):
    (tmp_path / "vllm-4242.json").write_text(json.dumps(DOC))
    other = json.loads(json.dumps(DOC))
    other["process"] = {"pid": 77, "title": "VLLM::Worker"}
    other["counters"]["sampler"]["fused"] = 1
    (tmp_path / "vllm-77.json").write_text(json.dumps(other))
    (tmp_path / "broken.json").write_text("{not json")
    registry = CollectorRegistry()
    registry.register(metrics.ReportCollector(str(tmp_path)))
    fused = scrape_lines(generate_latest(registry).decode(), "hotfuse_fused_calls_total")
    assert sorted(fused.values()) == [1.0, 7.0]
    assert any('process="VLLM::Worker 77"' in k for k in fused)


def test_report_writers_in_one_process_never_interleave(tmp_path, monkeypatch):
    """The report thread and the exit flush can write the same report at once (CI once read `...}}` from a
    vLLM worker's report): every read must parse, and no writer may fail."""
    import threading

    from hotfuse import report

    sizes = iter(range(10**9))
    monkeypatch.setattr(report, "process_doc", lambda state: {"pad": "x" * (next(sizes) % 97)})
    path = str(tmp_path / "vllm-1.json")
    report._write(path, None)
    errors, stop = [], threading.Event()

    def writer():
        try:
            for _ in range(300):
                report._write(path, None)
        except Exception as exc:  # noqa: BLE001 - the test reports what any writer raised
            errors.append(repr(exc))

    def reader():
        while not stop.is_set():
            with open(path) as fh:
                try:
                    json.load(fh)
                except ValueError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=writer) for _ in range(6)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert sorted(os.listdir(tmp_path)) == ["vllm-1.json"]
