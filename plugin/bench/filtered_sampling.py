"""Benchmark cases for the `sampler` fusion's filtered sampling: temperature + min-p + top-k + top-p, one draw per row.

Shape: {B, V, top_k, top_p, min_p, greedy} (top_k -1: off; greedy N: every N-th row has temperature 0, 0: none).
Inputs: fp32 logits `randn × 4`, temperatures uniform in [0.3, 1.3), one parameter set per batch. The roofline is one
read of the fp32 logits (4 B/element), the bar's reference (../shared/PERF.md §6). Variants:
- `hotfuse_filtered`: hotfuse's filtered kernel under vLLM's rule (`run_filtered_sample`, the kernel alone: the
  adapters check the inputs once per call in hotfuse.safety), `hotfuse_filtered_sglang` under SGLang's rule;
- `flashinfer`: vLLM 0.34's FlashInfer route (`top_k_top_p_sampling_from_logits` when both k and p apply, else
  softmax then `top_k_` / `top_p_` / `min_p_sampling_from_probs`), when the `flashinfer` package imports;
- `sglang`: SGLang 0.5.23's path: `div_`, softmax, then FlashInfer `top_k_top_p_sampling_from_probs(...,
  filter_apply_order="joint")`, or with min-p `top_k_renorm_prob`, `top_p_renorm_prob`, `min_p_sampling_from_probs`;
- `vllm`: vLLM 0.34's V2-runner path when it does not use FlashInfer (greedy rows, seeded requests, no FlashInfer):
  fp32 copy, its temperature kernel, its min-p kernel, its Triton top-k/top-p mask, its Gumbel-max kernel;
  `vllm_torch`: the same with its torch sort path for top-k/top-p. From the folder given as
  `--upstream vllm_sampling=DIR` (ci/vendor_upstream.sh vendors them into .upstream/);
- `compile`: torch.compile of hotfuse's vLLM-rule reference (it sorts the vocabulary and reads a top-k bound on the
  host, so it cannot be captured: host wall time per call).
Greedy rows are drawn by FlashInfer with top_k = 1. The check draws 8 times with each hotfuse variant and counts the
draws outside what the matching reference keeps (filters.kept_tokens_reference) and greedy rows off the first
argmax: 0 is the only pass.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from hotfuse.bench import Case, Variant, log
from hotfuse.kernels.sampling import run_filtered_sample
from hotfuse.kernels.sampling.filters import RULES, SGLANG_WITH_MIN_P, filtered_sample_reference, \
    kept_tokens_reference

# (top_k, top_p, min_p, greedy: every N-th row, 0 none): Qwen3's, Llama 3's, Gemma's defaults, min-p alone, and
# Qwen2.5's with a quarter of the rows greedy
PARAMETERS = [(20, 0.95, 0.0, 0), (-1, 0.9, 0.0, 0), (64, 0.95, 0.0, 0), (-1, 1.0, 0.05, 0), (20, 0.8, 0.0, 4)]
FULL = [(b, v) for v in (128256, 151936, 262144) for b in (1, 4, 16, 64, 256)]
QUICK = [(3, 4099)]
VENDORED = ("vllm_gumbel", "vllm_min_p", "vllm_topk_topp")  # ci/vendor_vllm_sampling.py's files


def batch(b: int, v: int, params: tuple, device: torch.device):
    top_k, top_p, min_p, greedy_every = params
    g = torch.Generator(device=device).manual_seed(b * 31 + v)
    logits = torch.randn(b, v, device=device, generator=g) * 4
    temps = torch.rand(b, device=device, generator=g) + 0.3
    if greedy_every:
        temps[::greedy_every] = 0.0
    k = torch.full((b,), v if top_k < 0 else top_k, dtype=torch.int32, device=device)
    p = torch.full((b,), top_p, dtype=torch.float32, device=device)
    m = torch.full((b,), min_p, dtype=torch.float32, device=device)
    return logits, temps, k, p, m


def sglang_rule(min_p: float):
    return SGLANG_WITH_MIN_P if min_p > 0 else RULES["sglang"]


def flashinfer_variants(fi, logits, temps, k, p, m, params) -> dict:
    """vLLM's FlashInfer route and SGLang's path, each as the engine calls FlashInfer."""
    top_k, top_p, min_p, _ = params
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


def load_vllm_sampling(folder: str) -> dict | None:
    """vLLM's vendored sampling modules from `folder`, or None when it lacks one of them."""
    modules = {}
    for name in VENDORED:
        path = os.path.join(folder, f"{name}.py")
        if not os.path.isfile(path):
            return None
        spec = importlib.util.spec_from_file_location(f"vendored_{name}", path)
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules


def vllm_variants(vk: dict, logits, temps, k, p, m, params) -> dict:
    """vLLM 0.34's V2 `Sampler.sample` without FlashInfer, step by step with its own kernels: the batch's requests
    in slots 0..B-1, one logit row each."""
    top_k, top_p, min_p, _ = params
    b = logits.shape[0]
    slots = torch.arange(b, dtype=torch.int64, device=logits.device)
    seeds = slots * 7919 + 1
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


def draws_off_rule(draw, logits, temps, k, p, m, rule, draws: int = 8) -> float:
    """Share of `draws` calls' tokens outside what `rule` keeps, greedy rows counted off when not the first argmax."""
    kept = kept_tokens_reference(logits, torch.where(temps == 0, 1.0, temps), k, p, m, rule)
    greedy = temps == 0
    first_argmax = logits.float().argmax(dim=-1)
    off = 0
    for i in range(draws):
        tokens = draw(i).long()
        inside = kept.gather(1, tokens[:, None]).squeeze(1)
        off += int((~inside & ~greedy).sum()) + int((greedy & (tokens != first_argmax)).sum())
    return off / max(1, draws * logits.shape[0])


def cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    try:
        import flashinfer as fi
    except ImportError:
        fi = None
        if device.type == "cuda":
            log("filtered sampling: flashinfer does not import here, so its rows and SGLang's are left out")
    vk = load_vllm_sampling(upstream["vllm_sampling"]) if "vllm_sampling" in upstream else None
    if device.type == "cuda" and "vllm_sampling" in upstream and vk is None:
        log(f"filtered sampling: {upstream['vllm_sampling']} lacks one of {VENDORED}: vLLM's rows left out")
    compiled = torch.compile(filtered_sample_reference, dynamic=True)  # one compile for every shape
    out = []
    for b, v in (QUICK if quick else FULL):
        for params in PARAMETERS:
            top_k, top_p, min_p, greedy_every = params
            logits, temps, k, p, m = batch(b, v, params, device)
            seeds = torch.arange(b, dtype=torch.int64, device=device) * 7919 + 1
            rule_sglang = sglang_rule(min_p)

            def hotfuse(rule, logits=logits, temps=temps, k=k, p=p, m=m, seeds=seeds):
                return lambda: run_filtered_sample(logits, temps, k, p, m, seeds, rule)

            variants = [Variant("hotfuse_filtered", hotfuse(RULES["vllm"]), roofline_bytes=4 * b * v + 8 * b),
                        Variant("hotfuse_filtered_sglang", hotfuse(rule_sglang), roofline_bytes=4 * b * v + 8 * b)]
            if fi is not None:
                variants += [Variant(n, f) for n, f in flashinfer_variants(fi, logits, temps, k, p, m, params).items()]
            if vk is not None:
                variants += [Variant(n, f) for n, f in vllm_variants(vk, logits, temps, k, p, m, params).items()]
            variants.append(Variant("compile", lambda logits=logits, temps=temps, k=k, p=p, m=m:
                                    compiled(logits, temps, k, p, m, "vllm"), graph=False))

            def check(logits=logits, temps=temps, k=k, p=p, m=m, seeds=seeds, rule_sglang=rule_sglang):
                off = 0.0
                for rule in (RULES["vllm"], rule_sglang):
                    off += draws_off_rule(lambda i, rule=rule: run_filtered_sample(
                        logits, temps, k, p, m, seeds + i * 104729, rule), logits, temps, k, p, m, rule)
                return off

            shape = {"B": b, "V": v, "top_k": top_k, "top_p": top_p, "min_p": min_p, "greedy": greedy_every}
            out.append(Case("sampler", shape, roofline_bytes=4 * b * v, variants=variants, check=check,
                            tolerance=0.0))
    return out
