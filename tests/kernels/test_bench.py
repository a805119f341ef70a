"""`hotfuse bench` on a CPU: says timings mean nothing there, runs the correctness pass, writes bench.json."""

import json
import subprocess
import sys

import torch

from hotfuse.bench import BENCH_MODULES, markdown
from hotfuse.bench.filtered_sampling import PARAMETERS, batch, draws_off_rule
from hotfuse.kernels.sampling.filters import RULES, kept_tokens_reference


def test_bench_on_cpu_runs_the_correctness_pass_only(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hotfuse.cli", "bench", "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "timings on a CPU are not meaningful" in out.stderr
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["device"] == "cpu" and doc["rows"] == []
    assert doc["checks"] and all(c["ok"] for c in doc["checks"])
    assert {c["fusion"] for c in doc["checks"]} == set(BENCH_MODULES)
    filtered = [c for c in doc["checks"] if "top_k" in c["shape"]]  # the sampler's filtered cases, every parameter set
    assert {(c["shape"]["top_k"], c["shape"]["top_p"], c["shape"]["min_p"], c["shape"]["greedy"])
            for c in filtered} == set(PARAMETERS)
    assert doc["torch"] and "triton" in doc and doc["complete"] is True


def test_filtered_check_counts_draws_outside_the_rule():
    """The filtered cases' check is 0 for draws inside the kept set, and counts a draw of a filtered token or a
    greedy row off its first argmax."""
    logits, temps, k, p, m = batch(4, 300, (20, 0.8, 0.0, 4), torch.device("cpu"))  # row 0 greedy
    kept = kept_tokens_reference(logits, torch.where(temps == 0, 1.0, temps), k, p, m, RULES["vllm"])
    inside = kept.float().argmax(dim=1)  # a kept token of each row
    inside[0] = logits[0].argmax()
    assert draws_off_rule(lambda i: inside, logits, temps, k, p, m, RULES["vllm"]) == 0
    outside = (~kept).float().argmax(dim=1)
    outside[0] = logits[0].argmin()
    assert draws_off_rule(lambda i: outside, logits, temps, k, p, m, RULES["vllm"]) == 1.0
    one_off = inside.clone()
    one_off[2] = outside[2]
    assert draws_off_rule(lambda i: one_off, logits, temps, k, p, m, RULES["vllm"]) == 0.25


def test_markdown_gives_each_shape_kind_its_table_and_the_cases_roofline():
    rows = [{"fusion": "sampler", "variant": "hotfuse", "shape": {"B": 1, "V": 8}, "roofline_us": 2.0,
             "case_roofline_us": 2.0, "us": 3.0, "x_roofline": 1.5, "host_us": 9.0},
            {"fusion": "sampler", "variant": "hotfuse_filtered", "shape": {"B": 1, "V": 8, "top_k": 20},
             "roofline_us": 1.5, "case_roofline_us": 1.0, "us": 4.0, "x_roofline": 2.7, "host_us": 9.0},
            {"fusion": "sampler", "variant": "compile", "shape": {"B": 1, "V": 8, "top_k": 20},
             "roofline_us": 1.0, "case_roofline_us": 1.0, "host_us": 50.0}]
    text = markdown({"device": "d", "torch": "t", "triton": "x", "cuda": "c", "copy_bandwidth_GBps": 1.0,
                     "created": "now", "rows": rows, "checks": []})
    tables = [line for line in text.splitlines() if line.startswith("| shape")]
    assert tables == ["| shape | roofline µs | hotfuse |", "| shape | roofline µs | hotfuse_filtered | compile |"]
    assert "| B=1 V=8 top_k=20 | 1.00 | 4.00 (2.7×) | host 50.00 |" in text
