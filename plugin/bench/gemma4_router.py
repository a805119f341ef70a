"""Benchmark cases for the `gemma4_router` fusion: bf16 router logits [T, E], K = 8.

Variants: `hotfuse` (gemma4_route), `eager` (the unfused torch path: topk, softmax over the top-k,
per-expert scale, casts), `compile` (torch.compile of that), `sglang` and `vllm` (the engines' own Triton
kernels, loaded from source files given with --upstream sglang_gemma4=PATH / vllm_gemma4=PATH).
Roofline bytes: logits read once, weights and ids written once, the scale read once (and the mask, if any).

Padded cases (shape `padded`: the number of CUDA-graph padding rows at the end of the batch, marked in a bool mask
as vLLM 0.34's runner marks them): `hotfuse` and `eager` apply the mask (id -1, weight 0), and `vllm` runs vLLM's
own kernel with `is_padding` where the vendored source takes it (vLLM 0.34); SGLang has no padding mask, so it has
no row there.
"""

from __future__ import annotations

import inspect

import torch

from hotfuse.bench import Case, Variant, load_upstream_module
from hotfuse.kernels.gemma4_router import gemma4_route, gemma4_route_reference, mask_padded_rows

# (tokens, experts, padded rows at the end of the batch)
FULL = [(t, e, 0) for e in (128, 256) for t in (1, 64, 1024, 4096, 16384, 65536)] + \
    [(8, 128, 3), (64, 128, 13), (512, 128, 100), (4096, 256, 1000)]
QUICK = [(0, 128, 0), (7, 128, 0), (300, 256, 0), (40, 128, 9)]
TOPK = 8


def eager_route(gating, scale, topk, is_padding=None):
    values, ids = torch.topk(gating, topk, dim=-1)
    weights = torch.softmax(values.float(), dim=-1) * scale[ids].float()
    return mask_padded_rows(weights, ids.to(torch.int32), is_padding)


def _takes_padding(module) -> bool:
    return "is_padding" in inspect.signature(module.gemma4_fused_routing_kernel_triton).parameters


def cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    sglang_mod = vllm_mod = None
    if "sglang_gemma4" in upstream:
        sglang_mod = load_upstream_module(upstream["sglang_gemma4"], "upstream_sglang_gemma4_routing")
    if "vllm_gemma4" in upstream:
        vllm_mod = load_upstream_module(upstream["vllm_gemma4"], "upstream_vllm_gemma4_routing")
    compiled = torch.compile(eager_route, dynamic=False)
    out = []
    for t, e, padded in (QUICK if quick else FULL):
        g = torch.Generator(device=device).manual_seed(t * 31 + e)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 is broken in the interpreter
        gating = (torch.randn(t, e, device=device, generator=g) * 2).to(dtype)
        scale = torch.rand(e, device=device, generator=g) + 0.5
        pad = (torch.arange(t, device=device) >= t - padded) if padded else None
        variants = [
            Variant("hotfuse", lambda gating=gating, scale=scale, pad=pad: gemma4_route(gating, scale, TOPK, pad)),
            Variant("eager", lambda gating=gating, scale=scale, pad=pad: eager_route(gating, scale, TOPK, pad)),
        ]
        if not padded:
            variants.append(Variant("compile", lambda gating=gating, scale=scale: compiled(gating, scale, TOPK)))
        if sglang_mod is not None and not padded:
            variants.append(Variant("sglang", lambda gating=gating, scale=scale:
                                    sglang_mod.gemma4_fused_routing(gating, scale, TOPK)))
        if vllm_mod is not None and not padded:
            variants.append(Variant("vllm", lambda gating=gating, scale=scale:
                                    vllm_mod.gemma4_fused_routing_kernel_triton(gating, TOPK, scale)))
        elif vllm_mod is not None and _takes_padding(vllm_mod):
            variants.append(Variant("vllm", lambda gating=gating, scale=scale, pad=pad:
                                    vllm_mod.gemma4_fused_routing_kernel_triton(gating, TOPK, scale, is_padding=pad)))

        def check(gating=gating, scale=scale, pad=pad):
            w, ids = gemma4_route(gating, scale, TOPK, pad)
            rw, rids = gemma4_route_reference(gating.double(), scale.double(), TOPK, pad)
            if not torch.equal(torch.sort(ids, -1).values, torch.sort(rids, -1).values):
                return float("inf")
            return (w.double() - rw.double()).abs().max().item() if w.numel() else 0.0

        nbytes = t * e * gating.element_size() + t * TOPK * 8 + e * 4 + (t if padded else 0)
        shape = {"T": t, "E": e, "K": TOPK, **({"padded": padded} if padded else {})}
        out.append(Case("gemma4_router", shape, roofline_bytes=nbytes, variants=variants, check=check,
                        tolerance=1e-6))
    return out
