"""Gemma4 MoE routing in one launch: top-k over the router logits, softmax over the K chosen logits in fp32,
times the chosen experts' `per_expert_scale`.

gemma4_route(gating_output [T, E], per_expert_scale [E], topk) -> (weights [T, K] fp32, ids [T, K] int32)

Experts come out in descending logit order; equal logits go to the lower expert id, always (every TP/EP
rank must pick the same experts). Any float dtype in; all math in fp32 (SGLang reverted a routing kernel
for a BF16 precision regression, #26588). NaN logits are treated as -inf (never routed to).
`per_expert_scale` is read on every call, so in-place weight updates take effect.

Kernel: each program routes BLOCK_T tokens at once, a [BLOCK_T, E] tile in registers, and extracts the
top K by K rounds of one row-max over packed (logit, expert) keys, instead of sorting all E experts per
token in a single-warp program as both engines' kernels do. bf16 / fp16 logits pack into 32-bit keys with
their exact 16-bit patterns; fp32 logits need 64-bit keys (twice the integer work). Fixed geometry per (E, K); no atomics; no host sync, so
it captures in CUDA graphs. Inputs it does not take (E > 1024, a non-unit expert stride, CPU tensors
without the interpreter, bf16 in the interpreter) run the torch reference, counted as fallbacks.
This module knows nothing about engines.
"""

from __future__ import annotations

import torch

from hotfuse.counters import count_fallback, count_fused
from hotfuse.kernels import interpreting, placement_reason

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional
    triton = None
    tl = None

FUSION = "gemma4_router"
MAX_EXPERTS = 1024


def gemma4_route_reference(gating_output: torch.Tensor, per_expert_scale: torch.Tensor,
                           topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfused torch path, with the same tie rule (stable sort: lower id first) and NaN rule."""
    logits = gating_output.float()
    logits = torch.where(torch.isnan(logits), float("-inf"), logits)
    values, ids = torch.sort(logits, dim=-1, descending=True, stable=True)
    values, ids = values[:, :topk], ids[:, :topk]
    weights = torch.softmax(values, dim=-1) * per_expert_scale.float()[ids]
    return weights, ids.to(torch.int32)


def _check_contract(gating_output: torch.Tensor, per_expert_scale: torch.Tensor, topk: int) -> None:
    if gating_output.dim() != 2:
        raise ValueError(f"gating_output must be [T, E], got shape {tuple(gating_output.shape)}")
    experts = gating_output.shape[1]
    if per_expert_scale.dim() != 1 or per_expert_scale.shape[0] != experts:
        raise ValueError(f"per_expert_scale must be [E] = [{experts}], got {tuple(per_expert_scale.shape)}")
    if not 1 <= topk <= experts:
        raise ValueError(f"topk must be in [1, {experts}], got {topk}")


def unsupported_reason(gating_output: torch.Tensor, per_expert_scale: torch.Tensor) -> str | None:
    reason = placement_reason(gating_output, floats=True)
    if reason is not None:
        return reason
    if interpreting() and per_expert_scale.dtype == torch.bfloat16:
        return "dtype=bfloat16 under the Triton interpreter"
    if gating_output.shape[1] > MAX_EXPERTS:
        return f"experts={gating_output.shape[1]} > {MAX_EXPERTS}"
    if gating_output.shape[0] and gating_output.stride(1) != 1:
        return "non-contiguous experts"
    if per_expert_scale.device != gating_output.device:
        return "per_expert_scale on another device"
    return None


if triton is not None:

    @triton.jit
    def _gemma4_route_kernel(gating_ptr, row_stride, scale_ptr, weights_ptr, ids_ptr, tokens, experts,
                             TOPK: tl.constexpr, TOPK_P2: tl.constexpr, BLOCK_T: tl.constexpr,
                             BLOCK_E: tl.constexpr, KEY_BITS: tl.constexpr, NAN_FROM: tl.constexpr):
        # Each (token, expert) becomes one integer key: the logit's bits made order-preserving as a signed
        # integer in the high half, (BLOCK_E - 1 - expert) in the low half. The row maximum of the keys is
        # then the largest logit and, among equal logits, the lowest expert: one reduction per round.
        # 16-bit logits (bf16 / fp16) fit a 32-bit key with their exact bits (KEY_BITS=32: half the work of
        # the 64-bit keys that fp32 logits need); NAN_FROM is the smallest NaN magnitude of that format.
        t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
        e = tl.arange(0, BLOCK_E)
        in_tokens = t < tokens
        valid = in_tokens[:, None] & (e < experts)[None, :]
        raw = tl.load(gating_ptr + t.to(tl.int64)[:, None] * row_stride + e[None, :], mask=valid,
                      other=float("-inf"))
        if KEY_BITS == 32:
            bits = raw.to(tl.int16, bitcast=True).to(tl.int32)  # sign-extended 16-bit pattern
            magnitude = bits & 0x7FFF
            bits = tl.where(magnitude > NAN_FROM, NAN_FROM - 32768, bits)  # NaN never wins: -inf's pattern
            bits = tl.where(magnitude == 0, 0, bits)  # -0.0 ties with +0.0, as in a comparison sort
            ordered = bits ^ ((bits >> 15) & 0x7FFF)  # monotonic in the logit as a signed integer
            keys = (ordered << 16) | (BLOCK_E - 1 - e)[None, :]
            lowest: tl.constexpr = -2147483648
        else:
            x = raw.to(tl.float32)
            x = tl.where(x != x, float("-inf"), x)  # NaN never wins
            x = tl.where(x == 0.0, 0.0, x)  # -0.0 ties with +0.0, as in a comparison sort
            bits = x.to(tl.int32, bitcast=True)
            ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # monotonic in x as a signed integer
            keys = (ordered.to(tl.int64) << 32) | (BLOCK_E - 1 - e)[None, :].to(tl.int64)
            lowest: tl.constexpr = -9223372036854775808
        keys = tl.where(valid, keys, lowest)
        k_cols = tl.arange(0, TOPK_P2)
        top_keys = tl.full([BLOCK_T, TOPK_P2], lowest, keys.dtype)
        for k in tl.static_range(TOPK):
            best = tl.max(keys, axis=1)
            keys = tl.where(keys == best[:, None], lowest, keys)  # keys are unique: this takes one expert
            top_keys = tl.where(k_cols[None, :] == k, best[:, None], top_keys)
        in_k = k_cols[None, :] < TOPK
        if KEY_BITS == 32:
            ids = BLOCK_E - 1 - (top_keys & 0xFFFF)
            top_ordered = top_keys >> 16
            top_bits = top_ordered ^ ((top_ordered >> 15) & 0x7FFF)
            top_vals = top_bits.to(tl.int16).to(raw.dtype, bitcast=True).to(tl.float32)
        else:
            ids = (BLOCK_E - 1 - (top_keys & 0xFFFFFFFF)).to(tl.int32)
            top_ordered = (top_keys >> 32).to(tl.int32)
            top_bits = top_ordered ^ ((top_ordered >> 31) & 0x7FFFFFFF)
            top_vals = top_bits.to(tl.float32, bitcast=True)
        # softmax over the K chosen logits; the first is their maximum
        first = tl.max(tl.where(in_k, top_vals, float("-inf")), axis=1)
        p = tl.where(in_k, tl.exp(top_vals - first[:, None]), 0.0)
        p = p / tl.sum(p, axis=1)[:, None]
        mask = in_tokens[:, None] & in_k
        scale = tl.load(scale_ptr + tl.where(mask, ids, 0), mask=mask, other=0.0).to(tl.float32)
        out = t.to(tl.int64)[:, None] * TOPK + k_cols[None, :]
        tl.store(weights_ptr + out, p * scale, mask=mask)
        tl.store(ids_ptr + out, ids, mask=mask)


# Geometry (tokens per program, warps), by token count: from an H200 sweep over 1-64 tokens and 1-8 warps
# (tools/tune_gemma4.py); a warp per one or two tokens keeps each round's row maximum inside a warp.
# Every token is routed independently, so the geometry never changes results.
GEOMETRY = {"small": (1, 1), "large": (4, 2), "large_from": 4096}
_NAN_FROM = {torch.bfloat16: 0x7F80, torch.float16: 0x7C00}  # magnitudes above these bit patterns are NaN


def gemma4_route(gating_output: torch.Tensor, per_expert_scale: torch.Tensor,
                 topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Route every token to its top-k experts. See the module docstring for the contract."""
    _check_contract(gating_output, per_expert_scale, topk)
    reason = unsupported_reason(gating_output, per_expert_scale)
    if reason is not None:
        count_fallback(FUSION, reason)
        return gemma4_route_reference(gating_output, per_expert_scale, topk)
    count_fused(FUSION)
    tokens, experts = gating_output.shape
    weights = torch.empty((tokens, topk), dtype=torch.float32, device=gating_output.device)
    ids = torch.empty((tokens, topk), dtype=torch.int32, device=gating_output.device)
    if tokens == 0:
        return weights, ids
    block_t, warps = GEOMETRY["large" if tokens >= GEOMETRY["large_from"] else "small"]
    if gating_output.device.type == "cpu":  # the interpreter runs programs one by one: fewer, larger ones
        block_t, warps = 16, 4
    _gemma4_route_kernel[(triton.cdiv(tokens, block_t),)](
        gating_output, gating_output.stride(0), per_expert_scale, weights, ids, tokens, experts,
        TOPK=topk, TOPK_P2=triton.next_power_of_2(topk), BLOCK_T=block_t,
        BLOCK_E=triton.next_power_of_2(experts), KEY_BITS=32 if gating_output.element_size() == 2 else 64,
        NAN_FROM=_NAN_FROM.get(gating_output.dtype, 0), num_warps=warps)
    return weights, ids
