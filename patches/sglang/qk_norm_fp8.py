"""SGLang QK-norm and static FP8 quant that torch.compile (inductor) can see through.

SGLang 0.5.11-0.5.21 already have this path behind their own gate (`--piecewise-cuda-graph-compiler
inductor` up to 0.5.13, `cuda_graph_config.prefill.tc_compiler=inductor` from 0.5.14): reported native, the
engine's gate stays in charge. In 0.5.22-0.5.23 the code is still there but the gate can no longer be set,
so torch.compile meets the opaque JIT QK-norm kernel and the sgl-kernel / Triton quant kernels.

0.5.22-0.5.23, fused: the functions `apply_qk_norm` and `apply_fp8_linear` call (never the ~22 model
files that import `apply_qk_norm` by name) take the inductor path exactly while torch.compile traces on
CUDA (not ROCm, whose RMSNorm kernels fault on strided views; never in eager):
- `_reshape_for_qk_norm`: the stride-preserving view of the QKV-split slice instead of a copying reshape;
- `can_use_fused_inplace_qknorm`: False, so the plain RMSNorm is traced instead of the opaque kernel;
- `static_quant_fp8` and `scaled_fp8_quant` with a static per-tensor scale (no padding, no dynamic
  scale): hotfuse's plain-torch quant (`hotfuse.kernels.fp8`), the same FP8 bytes as the kernels.
Everything else, and every eager call, goes to the engine's own functions unchanged.
reference (HOTFUSE_DISABLE=qk_norm_fp8): nothing is patched; the engine's opaque kernels run.

Testing hook: HOTFUSE_TEST_CUDA_GATE=1 makes the "on CUDA" test true on a CPU machine, so CI can trace the
real SGLang functions with the patched path under torch.compile.
"""

from __future__ import annotations

import torch

from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode, process_flags
from hotfuse.kernels.fp8 import static_fp8_quant
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "qk_norm_fp8"

# hooked in 0.5.22-0.5.23; in 0.5.11-0.5.21 only validated, so that "native" there is a checked claim
RESHAPE = Target("sglang.srt.models.utils", "_reshape_for_qk_norm", ("x", "head_dim"), {
    "3bf4ced92f8baee2": "0.5.11-0.5.13", "7231fb93cf8301b1": "0.5.14-0.5.15", "12ebc7f41d889b2f": "0.5.16",
    "7d0448fd1de8db2c": "0.5.17-0.5.23"})
APPLY_QK_NORM = Target("sglang.srt.models.utils", "apply_qk_norm",
                       ("q", "k", "q_norm", "k_norm", "head_dim", "alt_stream", "allow_inplace"),
                       {"b59437ea90a1d0f0": "0.5.20-0.5.23"})
CAN_FUSE = Target("sglang.kernels.ops.layernorm.norm", "can_use_fused_inplace_qknorm", ("head_dim", "dtype"),
                  {"a1bae9c0a8888925": "0.5.17-0.5.23"})
_FP8 = "sglang.kernels.ops.quantization.fp8_kernel"
STATIC_QUANT = Target(_FP8, "static_quant_fp8", ("x", "x_s", "repeat_scale"), {"44e53ab309cb83b3": "0.5.17-0.5.23"})
SCALED_QUANT = Target(_FP8, "scaled_fp8_quant", ("input", "scale", "num_token_padding", "use_per_token_if_dynamic"),
                      {"80a4df07a7a13629": "0.5.21-0.5.23"})
APPLY_FP8_LINEAR = Target("sglang.srt.layers.quantization.fp8_utils", "apply_fp8_linear", (
    "input", "weight", "weight_scale", "input_scale", "input_scale_ub", "bias", "cutlass_fp8_supported",
    "use_per_token_if_dynamic", "pad_output", "compressed_tensor_quant", "pre_quant_output_dtype"),
    {"bf39766dcb52b3ad": "0.5.22", "45120d357c2ef755": "0.5.23"})
TARGETS = (RESHAPE, APPLY_QK_NORM, CAN_FUSE, STATIC_QUANT, SCALED_QUANT, APPLY_FP8_LINEAR)


def inductor_on_cuda(t: torch.Tensor | None = None) -> bool:
    """True exactly while torch.compile traces code that will run on a CUDA (not ROCm) device."""
    if not torch.compiler.is_compiling() or torch.version.hip is not None:
        return False
    if process_flags().test_cuda_gate:
        return True
    return t.is_cuda if t is not None else torch.cuda.is_available()


def reshape_for_qk_norm(original, x, head_dim):
    if inductor_on_cuda(x):
        return x.view(*x.shape[:-1], -1, head_dim)
    return original(x, head_dim)


def can_use_fused_inplace_qknorm(original, head_dim, dtype):
    if inductor_on_cuda():
        return False
    return original(head_dim, dtype)


def _fp8_constants(original):
    g = original.__globals__
    return g["fp8_dtype"], g["fp8_min"], g["fp8_max"]


def static_quant_fp8(original, x, x_s, repeat_scale=False):
    if not (inductor_on_cuda(x) and x_s.numel() == 1):
        return original(x, x_s, repeat_scale)
    q = static_fp8_quant(x, x_s, *_fp8_constants(original))
    if repeat_scale:
        rows = x.numel() // x.shape[-1]
        return q, x_s.to(torch.float32).reshape(1, 1).expand(rows, 1).contiguous()
    return q, x_s


def scaled_fp8_quant(original, input, scale=None, num_token_padding=None, use_per_token_if_dynamic=False):
    if not (inductor_on_cuda(input) and scale is not None and scale.numel() == 1 and not num_token_padding):
        return original(input, scale, num_token_padding, use_per_token_if_dynamic)
    return static_fp8_quant(input, scale, *_fp8_constants(original)), scale


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if release < (0, 5, 22):
        gate = "--piecewise-cuda-graph-compiler inductor" if release < (0, 5, 14) else \
            "cuda_graph_config.prefill.tc_compiler=inductor"
        return AdapterPlan(State.NATIVE, f"the engine's own gate works in this release ({gate}); it stays in "
                           "charge and hotfuse patches nothing", requires=(RESHAPE,))
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "nothing patched: the engine's JIT QK-norm and quant kernels run, "
                           "opaque to torch.compile")
    return AdapterPlan(State.ACTIVE, "under torch.compile on CUDA: stride-preserving QK view, plain RMSNorm and "
                       "plain-torch static FP8 quant (eager and ROCm unchanged)",
                       ((RESHAPE, reshape_for_qk_norm), (CAN_FUSE, can_use_fused_inplace_qknorm),
                        (STATIC_QUANT, static_quant_fp8), (SCALED_QUANT, scaled_fp8_quant)),
                       requires=(APPLY_QK_NORM, APPLY_FP8_LINEAR))
