"""SGLang Gemma4 router: the routing function of every `Gemma4MoE` layer, swapped after construction.

In SGLang 0.5.11-0.5.23 `Gemma4MoE.__init__` builds its routing function as a closure (plain torch in
0.5.11-0.5.12; from 0.5.13 it calls SGLang's own Triton `gemma4_fused_routing` for CUDA logits) and
hands it to its TopK as `topk_config.custom_routing_function`, which `select_experts` reads on every
call. An AFTER hook on `Gemma4MoE.__init__` (through HookRegistry) replaces that attribute with hotfuse's
function, closing over the layer's own `per_expert_scale` Parameter (filled in place by the loader).
This one patch point works for every release in the range and on every device.

fused:      hotfuse's gemma4_route (one launch; lowest-id ties; fp32 math).
reference:  hotfuse's plain torch reference (stable sort, softmax over the top-k in fp32, scale), also
            where SGLang would run its own Triton kernel: the kill switch for the native kernel.
"""

from __future__ import annotations

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.gemma4_router import gemma4_route_reference
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "gemma4_router"
_MODULE = "sglang.srt.models.gemma4_causal"
_PARAMS = ("self", "hidden_size", "layer_id", "config", "quant_config", "prefix")

INIT_0511 = Target(_MODULE, "Gemma4MoE.__init__", _PARAMS, {
    "a50781a4c4deb2d3": "0.5.11-0.5.12", "8d3c631b13f8246c": "0.5.13", "62fd9cf82923f1a8": "0.5.14-0.5.15",
    "d11c2a22e3cbd681": "0.5.16", "772f61fb124ac516": "0.5.17-0.5.20"})
INIT_0521 = Target(_MODULE, "Gemma4MoE.__init__", _PARAMS + ("activation",), {"2a2fa8ba05937e2a": "0.5.21"})
INIT_0522 = Target(_MODULE, "Gemma4MoE.__init__", _PARAMS + ("activation", "reduce_results"), {
    "3243181ea6d1dab4": "0.5.22", "a1314959c407218f": "0.5.23"})
TARGETS = (INIT_0511, INIT_0521, INIT_0522)


def _routing_for(layer, fused: bool):
    scale = layer.per_expert_scale  # the Parameter itself: in-place loads stay visible

    def hotfuse_gemma4_routing(hidden_states, gating_output, topk, renormalize):
        if fused:
            return safety.call(checks.ROUTE, gating_output, scale, topk)
        safety.record_fallback(FUSION, "disabled: hotfuse torch reference")
        return gemma4_route_reference(gating_output, scale, topk)

    return hotfuse_gemma4_routing


def _installer(fused: bool):
    def after_init(original, self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.topk.topk_config.custom_routing_function = _routing_for(self, fused)

    return after_init


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    init = INIT_0522 if release >= (0, 5, 22) else INIT_0521 if release >= (0, 5, 21) else INIT_0511
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "plain torch routing in every Gemma4MoE layer (SGLang's Triton kernel "
                           "is not used)", ((init, _installer(fused=False)),))
    return AdapterPlan(State.ACTIVE, "hotfuse gemma4_route in every Gemma4MoE layer built after start-up",
                       ((init, _installer(fused=True)),))
