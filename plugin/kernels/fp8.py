"""Static per-tensor FP8 quantization in plain torch, so that torch.compile (inductor) can fuse it with its
neighbours (the RMSNorm before it, a residual add) instead of calling an opaque kernel.

Same arithmetic as the engines' static-quant kernels: the scale's reciprocal in fp32, the input times that
reciprocal in fp32, clamped to the FP8 range, then cast (round to nearest even).

The input keeps the rounding the unfused path gives it. A bf16 / fp16 input is the producer's fp32 result
rounded to 16 bits; when inductor fuses producer and quant it skips that rounding (its default
`emulate_precision_casts=False`), and about 2 % of FP8 bytes came out different in a Qwen3-shaped QK-norm +
quant test. So the 16-bit rounding is redone explicitly in fp32 arithmetic (integer round-to-nearest-even on
the fp32 bits, which inductor cannot drop): a no-op in eager, where the input already is 16-bit, and the
missing rounding step when fused. (A fused norm + quant that skipped this rounding cost another engine 9.5
GSM8K points.)
"""

from __future__ import annotations

import torch

_HALF_MAX = 65504.0
_HALF_MIN_NORMAL = 2.0 ** -14


def _round_fp32_bits(xf: torch.Tensor, dropped_bits: int) -> torch.Tensor:
    """Round fp32 values to `23 - dropped_bits` mantissa bits, to nearest even, on their bit patterns."""
    bits = xf.view(torch.int32)
    half = (1 << (dropped_bits - 1)) - 1
    bits = (bits + half + ((bits >> dropped_bits) & 1)) & ~((1 << dropped_bits) - 1)
    return bits.view(torch.float32)


def round_like(xf: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp32 values rounded as `.to(dtype).to(float32)` would round them, in fp32 arithmetic only."""
    if dtype == torch.bfloat16:
        return _round_fp32_bits(xf, 16)
    if dtype == torch.float16:
        normal = _round_fp32_bits(xf, 13)
        normal = torch.where(normal.abs() > _HALF_MAX, normal * float("inf"), normal)
        subnormal = torch.round(xf * 2.0 ** 24) * 2.0 ** -24  # exact scalings; round() is half to even
        return torch.where(xf.abs() < _HALF_MIN_NORMAL, subnormal, normal)
    return xf


def static_fp8_quant(x: torch.Tensor, scale: torch.Tensor, fp8_dtype: torch.dtype, fp8_min: float,
                     fp8_max: float) -> torch.Tensor:
    """x / scale as FP8 bytes: x in fp32 (with its own 16-bit rounding kept) * (1 / scale), clamped, cast."""
    inverse = scale.to(torch.float32).reciprocal().reshape(())
    xf = round_like(x.to(torch.float32), x.dtype)
    return (xf * inverse).clamp(min=fp8_min, max=fp8_max).to(fp8_dtype)
