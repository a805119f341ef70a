"""Which rule each filtered-sampling route follows, and the references' cost: every route of
hotfuse.bench.filtered_sampling (hotfuse's filtered kernel under vLLM's and SGLang's rules, vLLM's FlashInfer route,
SGLang's path, vLLM's own kernels when .upstream holds them) draws 8 times per row and each token is checked against
the kept sets of hotfuse's references (hotfuse.kernels.sampling.filters): that is what tells which engine rule a
FlashInfer call follows. It also times every route, and the eager and compiled references (they sync with the host:
CUDA events around eager calls). `hotfuse bench --fusion sampler` is the benchmark of record; this is the
research tool behind docs/experiments/2026-12-04-filtered-sampling-baseline.md.

Run on the device machine with FlashInfer carried as wheels (`python ci/trim_flashinfer_wheel.py .whl/flashinfer`
here, see CONTRIBUTING.md), then:
    HOTFUSE_GPU_SCRIPT=tools/filtered_sampling_baseline.py bash ci/gpu_run.sh OUT_DIR [--quick] [--no-reference]
Writes OUT_DIR/filtered-sampling-baseline.json (after every row) and prints a line per row.
"""

import json
import sys
import time
from pathlib import Path

import torch

from hotfuse.bench import copy_bandwidth, time_in_graph
from hotfuse.bench.filtered_sampling import FULL as SHAPES, PARAMETERS, batch, draws_off_rule, flashinfer_variants, \
    load_vllm_sampling, sglang_rule, vllm_variants
from hotfuse.kernels.sampling import run_filtered_sample
from hotfuse.kernels.sampling.filters import RULES, filtered_sample_reference

QUICK = [(b, v) for v in (128256,) for b in (1, 16, 256)]
UPSTREAM = Path(__file__).resolve().parents[1] / ".upstream"


def timed(fn, capturable=True):
    """µs per call: CUDA-graph replays, or CUDA events around eager calls for a call that syncs with the host
    (the references: a failed capture would leave the CUDA generator unusable for the rest of the run)."""
    if capturable:
        return time_in_graph(fn), "graph"
    torch.cuda.synchronize()
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(50):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e3 / 50, "events"


def main(out_dir, *args):
    import flashinfer as fi

    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} flashinfer {fi.__version__} "
          f"copy {bandwidth / 1e9:.0f} GB/s", flush=True)
    eager = filtered_sample_reference
    compiled = torch.compile(filtered_sample_reference, dynamic=True)  # one compile for every shape
    vk = load_vllm_sampling(str(UPSTREAM))
    print("vLLM's kernels:", "vendored from .upstream" if vk else "not found in .upstream (left out)", flush=True)
    rows = []
    for b, v in (QUICK if "--quick" in args else SHAPES):
        for params in PARAMETERS:
            logits, temps, k, p, m = batch(b, v, params, device)
            top_k, top_p, min_p, greedy_every = params
            variants = flashinfer_variants(fi, logits, temps, k, p, m, params)
            if vk is not None:
                variants.update(vllm_variants(vk, logits, temps, k, p, m, params))
            seeds = torch.randint(0, 1 << 62, (b,), dtype=torch.int64, device=device)
            rules = {"vllm": RULES["vllm"], "sglang": sglang_rule(min_p)}
            variants["hotfuse_filtered"] = lambda: run_filtered_sample(logits, temps, k, p, m, seeds, RULES["vllm"])
            variants["hotfuse_filtered_sglang"] = lambda: run_filtered_sample(logits, temps, k, p, m, seeds,
                                                                              rules["sglang"])
            # which rule each route follows: every token it draws must be one the rule keeps
            membership = {}
            for name, rule in (("flashinfer", "vllm"), ("sglang", "sglang"), ("hotfuse_filtered", "vllm"),
                               ("hotfuse_filtered_sglang", "sglang"), ("vllm", "vllm"), ("vllm_torch", "vllm")):
                if name not in variants:
                    continue
                try:
                    membership[name] = draws_off_rule(lambda i: variants[name](), logits, temps, k, p, m,
                                                      rules[rule]) == 0
                except Exception as exc:  # timed below, where the error is recorded
                    membership[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    torch.cuda.synchronize()
            if "--no-reference" not in args:  # the references take milliseconds a call: a long run
                variants["eager"] = lambda: eager(logits, temps, k, p, m, "vllm")
                variants["compile"] = lambda: compiled(logits, temps, k, p, m, "vllm")
            roofline_us = 4 * b * v / bandwidth * 1e6  # one read of the fp32 logits
            row = {"B": b, "V": v, "top_k": top_k, "top_p": top_p, "min_p": min_p, "greedy_every": greedy_every,
                   "roofline_us": roofline_us, "rule_check": membership}
            for name, fn in variants.items():
                try:
                    row[name], row[f"{name}_timing"] = timed(fn, capturable=name not in ("eager", "compile"))
                except Exception as exc:
                    row[name] = None
                    row[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    torch.cuda.synchronize()
            rows.append(row)
            cells = "  ".join(f"{n} {row[n]:.2f}" if row.get(n) else f"{n} -" for n in variants)
            print(f"B={b} V={v} k={top_k} p={top_p} min_p={min_p} greedy/{greedy_every or '-'}: roofline "
                  f"{roofline_us:.2f}  {cells}  rules {membership}", flush=True)
            # rewritten after every row: a run cut short by the device call's limit keeps what it measured
            with open(f"{out_dir}/filtered-sampling-baseline.json", "w") as fh:
                json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                           "flashinfer": fi.__version__, "copy_bandwidth_GBps": bandwidth / 1e9,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
