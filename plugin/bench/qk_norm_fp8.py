"""Benchmark cases for `qk_norm_fp8`: a Qwen3-shaped attention prologue in bf16 under torch.compile (inductor).

Per T tokens: hidden [T, 4096] -> RMSNorm -> static per-tensor FP8 quant (the qkv_proj input), and
qkv [T, (32 + 8 + 8) * 128] -> split -> per-head RMSNorm of q (32 heads) and k (8 heads), head_dim 128.
Every variant is compiled once per shape with fullgraph=True and timed inside a CUDA graph, with the inductor
settings SGLang's `--enable-torch-compile` uses (coordinate-descent tuning of kernel configs) unless named
otherwise.

- `hotfuse`: what inductor sees through the patched SGLang 0.5.22-0.5.23 functions: stride-preserving views
  of the q / k slices, plain RMSNorm, hotfuse's plain-torch static quant (`hotfuse.kernels.fp8`), so the
  norm and the quant fuse, and the split and the QK-norm fuse.
- `opaque_quant`: the unpatched path as far as it runs without SGLang: copying reshapes of q / k, plain
  RMSNorm, and SGLang's own Triton static-quant kernel (source given with --upstream
  sglang_fp8_quant=PATH) as an opaque call. The real unpatched 0.5.23 CUDA path also runs SGLang's JIT
  QK-norm kernel (it needs sgl-kernel, which the GPU box does not have).
- `hotfuse_inductor_defaults`: the same, compiled with inductor's default settings.
- `eager`: the hotfuse functions without torch.compile.
Roofline bytes: hidden read, FP8 written, q and k read and written once (bf16).
"""

from __future__ import annotations

import torch

from hotfuse.bench import Case, Variant, load_upstream_module
from hotfuse.kernels.fp8 import static_fp8_quant

HIDDEN, HQ, HK, D, EPS = 4096, 32, 8, 128, 1e-6
SGLANG_INDUCTOR = {"coordinate_descent_tuning": True}  # what SGLang's set_torch_compile_config() turns on
FP8, FP8_MAX = torch.float8_e4m3fn, 448.0


def rms_norm(x, weight):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS) * weight).to(x.dtype)


def make_prologue(by_head, quant):
    def prologue(hidden, qkv, w_in, w_q, w_k, scale):
        x_fp8 = quant(rms_norm(hidden, w_in), scale)
        q, k, _ = qkv.split([HQ * D, HK * D, HK * D], dim=-1)
        q = rms_norm(by_head(q), w_q).view(q.shape)
        k = rms_norm(by_head(k), w_k).view(k.shape)
        return x_fp8, q, k
    return prologue


def hotfuse_quant(x, scale):
    return static_fp8_quant(x, scale, FP8, -FP8_MAX, FP8_MAX)


def view_by_head(x):
    return x.view(*x.shape[:-1], -1, D)


def copy_by_head(x):
    return x.reshape(-1, D)


_OPAQUE = {}


def sglang_quant(module):
    """SGLang's static-quant kernel launched one program per row, as its wrapper does, behind a custom op:
    opaque to inductor like the engine's own quant call."""
    from hotfuse.kernels import tl, triton

    def launch(x, scale):
        out = torch.empty_like(x, dtype=FP8)
        n = x.shape[-1]
        block = triton.next_power_of_2(n)
        module._static_quant_fp8[(x.shape[0],)](x, out.view(torch.uint8), scale, scale, n, n, fp8_min=-FP8_MAX,
                                               fp8_max=FP8_MAX, BLOCK=block, FP8_DTYPE=tl.float8e4nv,
                                               REPEAT_SCALE=False, num_warps=min(max(block // 256, 1), 8),
                                               num_stages=1)
        return out

    if "op" not in _OPAQUE:
        @torch.library.custom_op("hotfuse_bench::sglang_static_quant_fp8", mutates_args=())
        def op(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return _OPAQUE["launch"](x, scale)

        @op.register_fake
        def _(x, scale):
            return torch.empty_like(x, dtype=FP8)

        _OPAQUE["op"] = op
    _OPAQUE["launch"] = launch
    return _OPAQUE["op"]


def cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    # one prologue code object, compiled per shape and variant (static shapes): more than Dynamo's default 8
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float16
    sglang_mod = None
    if "sglang_fp8_quant" in upstream and device.type == "cuda":
        sglang_mod = load_upstream_module(upstream["sglang_fp8_quant"], "upstream_sglang_static_quant_fp8")
    hotfuse = make_prologue(view_by_head, hotfuse_quant)
    out = []
    for t in ((3,) if quick else (16, 256, 4096)):
        g = torch.Generator(device=device).manual_seed(t)
        hidden = (torch.randn(t, HIDDEN, device=device, generator=g) * 2).to(dtype)
        qkv = torch.randn(t, (HQ + 2 * HK) * D, device=device, generator=g).to(dtype)
        w_in, w_q, w_k = (1 + 0.1 * torch.randn(n, device=device, generator=g) for n in (HIDDEN, D, D))
        scale = torch.tensor([0.02], device=device)
        args = (hidden, qkv, w_in, w_q, w_k, scale)
        compiled = torch.compile(hotfuse, fullgraph=True, dynamic=False, options=SGLANG_INDUCTOR)
        defaults = torch.compile(hotfuse, fullgraph=True, dynamic=False)
        variants = [Variant("hotfuse", lambda c=compiled, a=args: c(*a)),
                    Variant("hotfuse_inductor_defaults", lambda c=defaults, a=args: c(*a)),
                    Variant("eager", lambda a=args: hotfuse(*a))]
        if sglang_mod is not None:
            opaque = torch.compile(make_prologue(copy_by_head, sglang_quant(sglang_mod)), fullgraph=True,
                                   dynamic=False, options=SGLANG_INDUCTOR)
            variants.append(Variant("opaque_quant", lambda c=opaque, a=args: c(*a)))

        def check(c=compiled, a=args):
            # compiled vs eager: the norms' reductions may run in another order (1 bf16 ulp), which can move an
            # FP8 value by one FP8 step; the quant itself is bitwise-checked in tests/gpu/test_fp8_gpu.py
            x_fp8, q, k = c(*a)
            ref_fp8, ref_q, ref_k = hotfuse(*a)
            fp8_steps = ((x_fp8.float() - ref_fp8.float()).abs() / ref_fp8.float().abs().clamp_min(2.0 ** -6)).max()
            norms = max(float((q.float() - ref_q.float()).abs().max()), float((k.float() - ref_k.float()).abs().max()))
            return max(norms, float(fp8_steps) / 8)  # one e4m3 step is 1/8 relative: counts like 1 bf16 ulp at ~2

        qk_bytes = t * (HQ + HK) * D * 2
        out.append(Case("qk_norm_fp8", {"T": t}, roofline_bytes=t * HIDDEN * 2 + t * HIDDEN + 2 * qk_bytes,
                        variants=variants, check=check, tolerance=1.6e-2,
                        notes={"check": "max(norm abs error, FP8 relative difference / 8) vs eager"}))
    return out
