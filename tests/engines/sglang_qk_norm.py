"""Traces a Qwen3-shaped attention prologue through the real SGLang functions under torch.compile on CPU:
QKV split -> SGLang's `apply_qk_norm` with its `RMSNorm` layers -> the static FP8 quant SGLang's
`apply_fp8_linear` calls (`fp8_utils.static_quant_fp8`). Prints one JSON line: Dynamo's graph and break
counts, whether the traced graph casts to FP8 in plain torch, and how the compiled output compares with the
eager path. Run by tests/engines/test_sglang_adapters.py in a fresh process with HOTFUSE flags set; with
HOTFUSE_TEST_CUDA_GATE=1 hotfuse treats this CPU trace as a CUDA one. Without HOTFUSE only the eager path
runs (SGLang's Triton quant kernel cannot be traced on CPU), for the "eager is unchanged" comparison.
"""

import hashlib
import json
import os

import torch
from sglang.srt.plugins import load_plugins

load_plugins()

from sglang_cpu_context import init_sglang_cpu  # noqa: E402

init_sglang_cpu()

import sglang  # noqa: E402
from sglang.srt.layers.layernorm import RMSNorm  # noqa: E402
from sglang.srt.layers.quantization import fp8_utils  # noqa: E402
from sglang.srt.models.utils import apply_qk_norm  # noqa: E402

T, HQ, HK, D = 16, 4, 2, 64
g = torch.Generator().manual_seed(0)
q_norm, k_norm = RMSNorm(D, eps=1e-6), RMSNorm(D, eps=1e-6)
with torch.no_grad():
    q_norm.weight.copy_(1 + 0.1 * torch.randn(D, generator=g))
    k_norm.weight.copy_(1 + 0.1 * torch.randn(D, generator=g))
scale = torch.tensor([0.02])
qkv = (torch.randn(T, (HQ + 2 * HK) * D, generator=g) * 3).to(torch.bfloat16)


def prologue(qkv):
    q, k, _ = qkv.split([HQ * D, HK * D, HK * D], dim=-1)
    q, k = apply_qk_norm(q, k, q_norm, k_norm, D, allow_inplace=False)
    q_fp8, _ = fp8_utils.static_quant_fp8(q.reshape(T, HQ * D), scale)
    return q_fp8, k


compile_it = os.environ.get("HOTFUSE") not in (None, "", "0")  # stock: SGLang's Triton quant is not traceable on CPU
with torch.no_grad():
    eager_q, eager_k = prologue(qkv.clone())
result = {"sglang_version": sglang.__version__,
          "eager_q_bytes": hashlib.sha256(eager_q.view(torch.uint8).numpy().tobytes()).hexdigest()[:16],
          "eager_k_bytes": hashlib.sha256(eager_k.float().numpy().tobytes()).hexdigest()[:16]}
if not compile_it:
    print("HOTFUSE_QK_NORM_RESULT " + json.dumps(result), flush=True)
    raise SystemExit(0)
with torch.no_grad():
    torch._dynamo.reset()
    explained = torch._dynamo.explain(prologue)(qkv.clone())
    code = "\n".join(gm.code for gm in explained.graphs)
    torch._dynamo.reset()
    try:
        compiled_q, compiled_k = torch.compile(prologue, backend="inductor", fullgraph=True)(qkv.clone())
        fullgraph, error = True, None
    except Exception as exc:  # a graph break under fullgraph=True
        fullgraph, error = False, f"{type(exc).__name__}: {str(exc)[:300]}"
        compiled_q, compiled_k = torch.compile(prologue, backend="inductor")(qkv.clone())

# SGLang's own plain-torch static quant (its inductor branch in apply_fp8_linear), evaluated eagerly on the
# eager norm output: the unfused reference for the FP8 bytes
q_ref, k_ref = apply_qk_norm(*qkv.split([HQ * D, HK * D, HK * D], dim=-1)[:2], q_norm, k_norm, D, allow_inplace=False)
ref_fp8 = (q_ref.reshape(T, HQ * D) * scale.reciprocal()).clamp(min=fp8_utils.fp8_min, max=fp8_utils.fp8_max) \
    .to(fp8_utils.fp8_dtype)
print("HOTFUSE_QK_NORM_RESULT " + json.dumps({
    **result,
    "graph_count": explained.graph_count,
    "graph_break_count": explained.graph_break_count,
    "break_reasons": [str(b.reason)[:200] for b in explained.break_reasons],
    "fullgraph": fullgraph, "fullgraph_error": error,
    "plain_fp8_cast_in_graph": "float8_e4m3fn" in code,
    "triton_kernel_in_graph": "triton_kernel_wrapper" in code,
    "compiled_fp8_equals_reference": bool(torch.equal(compiled_q.view(torch.uint8), ref_fp8.view(torch.uint8))),
    "k_max_error": float((compiled_k.float() - k_ref.float()).abs().max()),
    "eager_k_equals_reference": bool(torch.equal(eager_k, k_ref)),
}), flush=True)
