"""Benchmark cases for the `gemma4_router` fusion: bf16 router logits [T, E], K = 8.

Variants: `hotfuse` (gemma4_route), `eager` (the unfused torch path: topk, softmax over the top-k,
per-expert scale, casts), `compile` (torch.compile of that), `sglang` and `vllm` (the engines' own Triton
kernels, loaded from source files given with --upstream sglang_gemma4=PATH / vllm_gemma4=PATH).
Roofline bytes: logits read once, weights and ids written once, the scale read once.
"""

from __future__ import annotations

import torch

from hotfuse.bench import Case, Variant, load_upstream_module
from hotfuse.kernels.gemma4_router import gemma4_route, gemma4_route_reference

FULL = [(t, e) for e in (128, 256) for t in (1, 64, 1024, 4096, 16384, 65536)]
QUICK = [(0, 128), (7, 128), (300, 256)]
TOPK = 8


def eager_route(gating, scale, topk):
    values, ids = torch.topk(gating, topk, dim=-1)
    weights = torch.softmax(values.float(), dim=-1) * scale[ids].float()
    return weights, ids.to(torch.int32)


def cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    sglang_mod = vllm_mod = None
    if "sglang_gemma4" in upstream:
        sglang_mod = load_upstream_module(upstream["sglang_gemma4"], "upstream_sglang_gemma4_routing")
    if "vllm_gemma4" in upstream:
        vllm_mod = load_upstream_module(upstream["vllm_gemma4"], "upstream_vllm_gemma4_routing")
    compiled = torch.compile(eager_route, dynamic=False)
    out = []
    for t, e in (QUICK if quick else FULL):
        g = torch.Generator(device=device).manual_seed(t * 31 + e)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 is broken in the interpreter
        gating = (torch.randn(t, e, device=device, generator=g) * 2).to(dtype)
        scale = torch.rand(e, device=device, generator=g) + 0.5
        variants = [
            Variant("hotfuse", lambda gating=gating, scale=scale: gemma4_route(gating, scale, TOPK)),
            Variant("eager", lambda gating=gating, scale=scale: eager_route(gating, scale, TOPK)),
            Variant("compile", lambda gating=gating, scale=scale: compiled(gating, scale, TOPK)),
        ]
        if sglang_mod is not None:
            variants.append(Variant("sglang", lambda gating=gating, scale=scale:
                                    sglang_mod.gemma4_fused_routing(gating, scale, TOPK)))
        if vllm_mod is not None:
            variants.append(Variant("vllm", lambda gating=gating, scale=scale:
                                    vllm_mod.gemma4_fused_routing_kernel_triton(gating, TOPK, scale)))

        def check(gating=gating, scale=scale):
            w, ids = gemma4_route(gating, scale, TOPK)
            rw, rids = gemma4_route_reference(gating.double(), scale.double(), TOPK)
            if not torch.equal(torch.sort(ids, -1).values, torch.sort(rids, -1).values):
                return float("inf")
            return (w.double() - rw.double()).abs().max().item() if w.numel() else 0.0

        nbytes = t * e * gating.element_size() + t * TOPK * 8 + e * 4
        out.append(Case("gemma4_router", {"T": t, "E": e, "K": TOPK}, roofline_bytes=nbytes, variants=variants,
                        check=check, tolerance=1e-6))
    return out
