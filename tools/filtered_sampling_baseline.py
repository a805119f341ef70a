"""The bar for filtered sampling (temperature + min-p + top-k + top-p): FlashInfer's samplers, SGLang's sampling path
and torch.compile of hotfuse's reference, timed at the shapes and parameters of the filtered-sampler work, and the
tokens FlashInfer draws checked against the kept sets of hotfuse's references (hotfuse.kernels.sampling.filters),
which is what tells which engine rule each FlashInfer call follows; and hotfuse's filtered kernel beside them.

Run on the device machine with FlashInfer carried as wheels (`python ci/trim_flashinfer_wheel.py .whl/flashinfer`
here, see CONTRIBUTING.md), then:
    HOTFUSE_GPU_SCRIPT=tools/filtered_sampling_baseline.py bash ci/gpu_run.sh OUT_DIR [--quick] [--no-reference]
Writes OUT_DIR/filtered-sampling-baseline.json and prints a table. Variants (µs per call; CUDA-graph replays where
FlashInfer and SGLang, CUDA events around calls for the references, which sync with the host; said per row):
- `flashinfer`: vLLM's FlashInfer route as vLLM 0.34 calls it (`top_k_top_p_sampling_from_logits` when both k and
  p apply, else softmax then `top_k_` / `top_p_sampling_from_probs`); with min-p, softmax then
  `min_p_sampling_from_probs` after top-k / top-p renormalisation;
- `sglang`: SGLang 0.5.23's path: `div_`, softmax, then FlashInfer `top_k_top_p_sampling_from_probs(...,
  filter_apply_order="joint")`, or with min-p `top_k_renorm_prob`, `top_p_renorm_prob`, `min_p_sampling_from_probs`;
- `vllm`: vLLM 0.34's V2-runner path when FlashInfer is not used (greedy rows, seeded requests, or no FlashInfer):
  fp32 copy, its temperature kernel, its min-p kernel, its Triton top-k/top-p mask, its Gumbel-max kernel;
  `vllm_torch`: the same with its torch sort path for top-k/top-p. Vendored from the vLLM 0.34 wheel by
  ci/vendor_upstream.sh into .upstream/ (carry it to the device machine); left out when .upstream has no copy;
- `compile`: torch.compile of hotfuse's vLLM-rule reference (sort-based), `eager`: the same uncompiled;
- `hotfuse_filtered`: hotfuse's filtered kernel under vLLM's rule (`filtered_sample`), and `hotfuse_filtered_sglang`
  under SGLang's (joint top-k/top-p, or with min-p top-k, top-p, min-p in turn).
Greedy rows (1 in 4 in the last parameter set) are drawn by FlashInfer with top_k = 1.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from hotfuse.bench import copy_bandwidth, time_in_graph
from hotfuse.kernels.sampling import run_filtered_sample
from hotfuse.kernels.sampling.filters import RULES, SGLANG_WITH_MIN_P, filtered_sample_reference, \
    kept_tokens_reference

# (top_k, top_p, min_p, greedy share): the parameter sets; top_k -1 is off
PARAMETERS = [(20, 0.95, 0.0, 0), (-1, 0.9, 0.0, 0), (64, 0.95, 0.0, 0), (-1, 1.0, 0.05, 0), (20, 0.8, 0.0, 4)]
SHAPES = [(b, v) for v in (128256, 151936, 262144) for b in (1, 4, 16, 64, 256)]
QUICK = [(b, v) for v in (128256,) for b in (1, 16, 256)]


def batch(b, v, params, device):
    top_k, top_p, min_p, greedy_every = params
    g = torch.Generator(device=device).manual_seed(b * 31 + v)
    logits = torch.randn(b, v, device=device, generator=g) * 4
    temps = torch.rand(b, device=device, generator=g) * 1.0 + 0.3
    if greedy_every:
        temps[::greedy_every] = 0.0
    k = torch.full((b,), v if top_k < 0 else top_k, dtype=torch.int32, device=device)
    p = torch.full((b,), top_p, dtype=torch.float32, device=device)
    m = torch.full((b,), min_p, dtype=torch.float32, device=device)
    return logits, temps, k, p, m


def flashinfer_variants(fi, logits, temps, k, p, m, params):
    top_k, top_p, min_p, greedy_every = params
    scale = torch.where(temps == 0, 1.0, temps)[:, None]
    k_eff = torch.where(temps == 0, 1, k).to(torch.int32)  # greedy rows: top-1

    def vllm_route():
        x = logits / scale
        if min_p > 0:
            return fi.sampling.min_p_sampling_from_probs(torch.softmax(x, -1), m)
        if top_k > 0 and top_p < 1:
            return fi.sampling.top_k_top_p_sampling_from_logits(x, k_eff, p, deterministic=True)
        if top_k > 0:
            return fi.sampling.top_k_sampling_from_probs(torch.softmax(x, -1), k_eff, deterministic=True)
        return fi.sampling.top_p_sampling_from_probs(torch.softmax(x, -1), p, deterministic=True)

    def sglang_route():
        probs = torch.softmax(logits.div(scale), -1)
        if min_p > 0:
            probs = fi.sampling.top_k_renorm_probs(probs, k_eff)
            probs = fi.sampling.top_p_renorm_probs(probs, p)
            return fi.sampling.min_p_sampling_from_probs(probs, m)
        return fi.sampling.top_k_top_p_sampling_from_probs(probs, k_eff, p, filter_apply_order="joint")

    return {"flashinfer": vllm_route, "sglang": sglang_route}


UPSTREAM = Path(__file__).resolve().parents[1] / ".upstream"


def vllm_kernels():
    """vLLM's vendored sampling modules (ci/vendor_vllm_sampling.py), or None when .upstream has none."""
    modules = {}
    for name in ("vllm_gumbel", "vllm_min_p", "vllm_topk_topp"):
        path = UPSTREAM / f"{name}.py"
        if not path.is_file():
            return None
        spec = importlib.util.spec_from_file_location(f"vendored_{name}", path)
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules


def vllm_variants(vk, logits, temps, k, p, m, params):
    """vLLM 0.34's V2 `Sampler.sample` without FlashInfer, step by step with its own kernels: the batch's requests
    in slots 0..B-1, one logit row each."""
    top_k, top_p, min_p, greedy_every = params
    b = logits.shape[0]
    slots = torch.arange(b, dtype=torch.int64, device=logits.device)
    seeds = torch.arange(b, dtype=torch.int64, device=logits.device) * 7919 + 1
    positions = torch.full((b,), 100, dtype=torch.int64, device=logits.device)
    k_arg = k if top_k > 0 else None
    p_arg = p if top_p < 1 else None
    has_topp_only_rows = p_arg is not None and k_arg is None

    def route(mask):
        def run():
            x = torch.empty_like(logits, dtype=torch.float32).copy_(logits)
            vk["vllm_gumbel"].apply_temperature(x, slots, temps)
            if min_p > 0:
                vk["vllm_min_p"].apply_min_p(x, slots, m)
            if k_arg is not None or p_arg is not None:
                x = mask(x)
            return vk["vllm_gumbel"].gumbel_sample(x, slots, temps, seeds, positions, apply_temperature=False,
                                                   is_drafting=False)
        return run

    topk_topp = vk["vllm_topk_topp"]
    return {"vllm": route(lambda x: topk_topp.apply_top_k_top_p_triton(x, k_arg, p_arg,
                                                                       has_topp_only_rows=has_topp_only_rows)),
            "vllm_torch": route(lambda x: topk_topp.apply_top_k_top_p_pytorch(x, k_arg, p_arg))}


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
    vk = vllm_kernels()
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
            sglang_rule = SGLANG_WITH_MIN_P if min_p > 0 else RULES["sglang"]
            variants["hotfuse_filtered"] = lambda: run_filtered_sample(logits, temps, k, p, m, seeds, RULES["vllm"])
            variants["hotfuse_filtered_sglang"] = lambda: run_filtered_sample(logits, temps, k, p, m, seeds,
                                                                              sglang_rule)
            # which rule each route follows: every token it draws must be one the rule keeps
            kept = {"vllm": kept_tokens_reference(logits, torch.where(temps == 0, 1.0, temps), k, p, m, RULES["vllm"]),
                    "sglang": kept_tokens_reference(logits, torch.where(temps == 0, 1.0, temps), k, p, m,
                                                    SGLANG_WITH_MIN_P if min_p > 0 else RULES["sglang"])}
            greedy = temps == 0
            membership = {}
            for name, rule in (("flashinfer", "vllm"), ("sglang", "sglang"), ("hotfuse_filtered", "vllm"),
                               ("hotfuse_filtered_sglang", "sglang"), ("vllm", "vllm"), ("vllm_torch", "vllm")):
                if name not in variants:
                    continue
                ok = True
                try:
                    for _ in range(8):
                        tokens = variants[name]().long()
                        inside = kept[rule].gather(1, tokens[:, None]).squeeze(1)
                        ok &= bool((inside | greedy).all())
                except Exception as exc:  # timed below, where the error is recorded
                    ok = f"{type(exc).__name__}: {str(exc)[:200]}"
                    torch.cuda.synchronize()
                membership[name] = ok
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
