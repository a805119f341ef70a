"""Benchmark cases for the `sampler` fusion: temperature + softmax over fp32 logits [B, V].

Variants: `hotfuse` (temperature_softmax in place, as SGLang uses it), `hotfuse_sample`
(temperature_sample: reads the logits once, writes B token ids; roofline 4 B/element), `eager`
(SGLang today: div_ then softmax copied back), `softmax_div` (torch.softmax(x / t)), `compile`
(torch.compile of softmax(x / t)), and `sglang` (SGLang's split-row Triton kernel, loaded from the
source file given with --upstream sglang_sampler=PATH; it handles ≤ 32 rows and falls back above).
"""

from __future__ import annotations

import torch

from hotfuse.bench import Case, Variant, load_upstream_module
from hotfuse.kernels.sampling import temperature_sample, temperature_softmax, temperature_softmax_reference

FULL = [(b, v) for v in (128256, 262144) for b in (1, 4, 16, 64, 256)]
QUICK = [(1, 4099), (3, 20000), (0, 1000)]


def _inputs(b, v, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    logits = torch.randn(b, v, device=device, generator=g) * 4
    temps = torch.rand(b, 1, device=device, generator=g) * 1.5 + 0.25
    return logits, temps


def cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    sglang_mod = None
    if "sglang_sampler" in upstream:
        sglang_mod = load_upstream_module(upstream["sglang_sampler"], "upstream_sglang_temperature_softmax")
    compiled = torch.compile(lambda x, t: torch.softmax(x / t, dim=-1), dynamic=False)
    out = []
    for b, v in (QUICK if quick else FULL):
        logits, temps = _inputs(b, v, device, seed=b * 7919 + v)
        work = logits.clone()
        seeds = torch.arange(b, dtype=torch.int64, device=device)

        def hotfuse(work=work, temps=temps):
            temperature_softmax(work, temps, out=work)

        def eager(work=work, temps=temps):
            work.div_(temps)
            work[:] = torch.softmax(work, dim=-1)

        def softmax_div(logits=logits, temps=temps):
            return torch.softmax(logits / temps, dim=-1)

        def compile_(logits=logits, temps=temps):
            return compiled(logits, temps)

        def sample(logits=logits, temps=temps, seeds=seeds):
            return temperature_sample(logits, temps, seeds)

        variants = [Variant("hotfuse", hotfuse), Variant("hotfuse_sample", sample, roofline_bytes=4 * b * v + 8 * b),
                    Variant("eager", eager), Variant("softmax_div", softmax_div), Variant("compile", compile_)]
        if sglang_mod is not None:
            variants.append(Variant("sglang", lambda logits=logits, temps=temps:
                                    sglang_mod.temperature_softmax(logits, temps)))

        def check(logits=logits, temps=temps):
            got = temperature_softmax(logits, temps)
            ref = torch.softmax(logits.double() / temps.double(), dim=-1)
            return (got.double() - ref).abs().max().item() if got.numel() else 0.0

        out.append(Case("sampler", {"B": b, "V": v}, roofline_bytes=8 * b * v, variants=variants,
                        check=check, tolerance=1e-5))
    return out


__all__ = ["cases", "temperature_softmax_reference"]
