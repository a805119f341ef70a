"""`hotfuse demo` end to end: the real installed engine, the embedded tiny model, three runs; the report's facts.

vLLM in the vllm venv (marker engine_vllm), SGLang in the sglang venv (engine_sglang). Each test runs the
command as a user would (`python -m hotfuse.cli demo --json`), then checks what the report says happened
inside the engine processes, not only the exit code.
"""

import json
import subprocess
import sys

import pytest

from helpers import clean_env


def run_demo(tmp_path, engine):
    env = clean_env(tmp_path, HOTFUSE_DEMO_MODELS=str(tmp_path / "models"))
    env.pop("SGLANG_PLATFORM", None)  # the demo picks the CPU platform itself
    out = subprocess.run([sys.executable, "-m", "hotfuse.cli", "demo", "--engine", engine, "--json",
                          str(tmp_path / "demo.json"), "--workdir", str(tmp_path / "work")],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return json.loads((tmp_path / "demo.json").read_text()), out.stdout


def by_title(run, needle):
    found = [p for p in run["processes"] if needle in p["title"]]
    assert found, [p["title"] for p in run["processes"]]
    return found[0]


@pytest.mark.engine_vllm
def test_vllm_demo_reports_what_happened_in_the_worker(tmp_path):
    doc, text = run_demo(tmp_path, "vllm")
    off, on, disabled = doc["runs"]
    assert [r["label"] for r in doc["runs"]] == ["off", "on", "disabled"] and doc["ok"]
    assert on["agrees_with_off"] and disabled["agrees_with_off"] and on["tokens"] == off["tokens"]
    assert all(len(t) == 8 for t in off["tokens"]) and all(len(t) == 8 for t in on["sampled"])
    for proc in off["processes"]:
        assert {f["state"] for f in proc["fusions"].values()} == {"inert"} and proc["patches"] == []
    worker = by_title(on, "VLLM::Worker")
    assert worker["fusions"]["gemma4_router"]["state"] == "active"
    assert worker["counters"]["gemma4_router"]["fused"] > 0 and not worker["counters"]["gemma4_router"]["fallbacks"]
    assert worker["counters"]["sampler"]["fused"] > 0, "the sampled requests go through the fused sampler"
    worker = by_title(disabled, "VLLM::Worker")
    assert worker["fusions"]["gemma4_router"]["state"] == "reference"
    assert worker["counters"]["gemma4_router"]["fused"] == 0
    assert sum(worker["counters"]["gemma4_router"]["fallbacks"].values()) > 0
    assert on["tokens_per_s"] > 0 and off["tokens_per_s"] > 0
    # every process is named by its role: vLLM's untitled model-inspection subprocess too, never a bare pid
    assert not [p["title"] for r in doc["runs"] for p in r["processes"] if p["title"].startswith("pid ")]
    # the printed report says the same
    assert "tokens/s (CPU)" in text and "VLLM::Worker" in text and "greedy tokens identical" in text


@pytest.mark.engine_sglang
def test_sglang_demo_reports_what_happened_in_the_scheduler(tmp_path):
    doc, text = run_demo(tmp_path, "sglang")
    off, on, disabled = doc["runs"]
    assert doc["ok"] and on["agrees_with_off"] and disabled["agrees_with_off"]
    scheduler = by_title(on, "sglang::scheduler")
    assert {p["fusion"] for p in scheduler["patches"]} >= {"sampler", "topk_postprocess", "spec_gather"}
    assert scheduler["fusions"]["topk_postprocess"]["state"] == "active"
    assert scheduler["counters"]["sampler"]["fused"] > 0, "the sampled requests go through the fused sampler"
    scheduler = by_title(disabled, "sglang::scheduler")
    assert scheduler["fusions"]["topk_postprocess"]["state"] == "reference"
    assert "sglang::scheduler" in text and "greedy tokens identical" in text


def test_the_report_names_processes_by_their_role():
    from hotfuse.demo import _title

    def report(title, argv):
        return {"process": {"pid": 7, "title": title, "argv": argv}}

    assert _title(report("VLLM::Worker", [])) == "VLLM::Worker"
    assert _title(report("python -m hotfuse.demo.driver vllm", [])) == "main (pid 7)"
    inspection = ["/venv/lib/python3.11/site-packages/vllm/model_executor/models/registry.py"]
    assert _title(report("/venv/bin/python", inspection)) == "vLLM model inspection (pid 7)"
    assert _title(report(None, ["/somewhere/else.py"])) == "pid 7"
