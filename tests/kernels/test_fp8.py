"""hotfuse.kernels.fp8: the plain-torch static FP8 quant gives the unfused path's bytes, eager and fused.

The fused case is the one that matters: inductor fuses the producer (e.g. an RMSNorm computing in fp32 and
rounding to bf16) with the quant and, by default, drops that rounding. The quant redoes it explicitly.
"""

import pytest
import torch

from hotfuse.kernels.fp8 import round_like, static_fp8_quant

FP8 = torch.float8_e4m3fn
LIMITS = (-448.0, 448.0)


def reference_bytes(x16: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The unfused path: a 16-bit input, times the scale's reciprocal in fp32, clamped, cast."""
    return (x16.float() * scale.float().reciprocal()).clamp(*LIMITS).to(FP8).view(torch.uint8)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_round_like_is_the_cast_on_every_kind_of_value(dtype):
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(50000, generator=g) * s for s in (1e-8, 1e-6, 1e-4, 1e-2, 1.0, 300.0, 3e4, 7e4, 1e38)]
    edges = torch.tensor([0.0, -0.0, 65504.0, 65519.9, 65520.0, 2.0 ** -14, 2.0 ** -24, 3 * 2.0 ** -25,
                          float("inf"), float("-inf"), 3.3e38])
    x = torch.cat(parts + [edges])
    assert torch.equal(round_like(x, dtype), x.to(dtype).float())
    assert torch.isnan(round_like(torch.tensor([float("nan")]), dtype)).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_eager_quant_bytes_equal_the_unfused_formula(dtype):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(64, 512, generator=g) * 60).to(dtype)
    x[0, :4] = torch.tensor([1e4, -1e4, 0.0, 448.0 * 0.02])
    scale = torch.tensor([0.02])
    got = static_fp8_quant(x, scale, FP8, *LIMITS).view(torch.uint8)
    assert torch.equal(got, reference_bytes(x, scale))


def producer_and_quant(a, w, scale, quant):
    y = (a.float() * torch.rsqrt(a.float().pow(2).mean(-1, keepdim=True) + 1e-6) * w).to(torch.bfloat16)
    return quant(y, scale)


def test_fused_with_its_producer_the_bytes_still_equal_the_unfused_path():
    g = torch.Generator().manual_seed(2)
    a = (torch.randn(32, 512, generator=g) * 3).to(torch.bfloat16)
    w = 1 + 0.1 * torch.randn(512, generator=g)
    scale = torch.tensor([0.004])
    eager = producer_and_quant(a, w, scale, lambda y, s: reference_bytes(y, s))

    def hotfuse_quant(y, s):
        return static_fp8_quant(y, s, FP8, *LIMITS).view(torch.uint8)

    def naive_quant(y, s):  # without the explicit rounding: what inductor makes of the plain formula
        return (y.float() * s.reciprocal()).clamp(*LIMITS).to(FP8).view(torch.uint8)

    torch._dynamo.reset()
    fused = torch.compile(producer_and_quant, fullgraph=True)(a, w, scale, hotfuse_quant)
    torch._dynamo.reset()
    naive = torch.compile(producer_and_quant, fullgraph=True)(a, w, scale, naive_quant)
    assert torch.equal(fused, eager)
    assert not torch.equal(naive, eager), "the hazard this guards against is real in this torch build"
