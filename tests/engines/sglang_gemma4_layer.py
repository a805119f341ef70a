"""Builds a real SGLang `Gemma4MoE` layer on CPU (no engine) after loading hotfuse's SGLang plugin the way
the scheduler does, calls the layer's routing function, and prints a JSON line with what happened.

Run as a subprocess by tests/engines/test_sglang_adapters.py, with HOTFUSE flags in the environment, against the
installed SGLang (0.5.23) or, with the 0.5.12 overlay first on PYTHONPATH, against SGLang 0.5.12.
"""

import json

import torch
from sglang.srt.plugins import load_plugins

load_plugins()  # runs hotfuse's sglang.srt.plugins entry point, then HookRegistry.apply_hooks()

from sglang_cpu_context import init_sglang_cpu  # noqa: E402
from transformers import Gemma4TextConfig  # noqa: E402

init_sglang_cpu()

from hotfuse import counters  # noqa: E402
from hotfuse.kernels.gemma4_router import gemma4_route_reference  # noqa: E402
import sglang  # noqa: E402
from sglang.srt.models.gemma4_causal import Gemma4MoE  # noqa: E402

experts, topk = 16, 4
config = Gemma4TextConfig(hidden_size=128, num_experts=experts, top_k_experts=topk, moe_intermediate_size=64,
                          enable_moe_block=True, num_hidden_layers=2, vocab_size=512)
layer = Gemma4MoE(hidden_size=128, layer_id=0, config=config, prefix="model.layers.0.moe")
with torch.no_grad():
    layer.per_expert_scale.copy_(torch.rand(experts) + 0.5)  # as the weight loader does, in place
routing = layer.topk.topk_config.custom_routing_function
gating = torch.randn(37, experts)
gating[3, :] = 0.25  # all tied
weights, ids = routing(hidden_states=torch.randn(37, 128), gating_output=gating, topk=topk, renormalize=True)
ref_w, ref_ids = gemma4_route_reference(gating, layer.per_expert_scale.detach(), topk)
print("HOTFUSE_LAYER_RESULT " + json.dumps({
    "sglang_version": sglang.__version__,
    "routing_function": routing.__qualname__,
    "same_experts": bool(torch.equal(torch.sort(ids, -1).values, torch.sort(ref_ids, -1).values)),
    "same_experts_untied": bool(torch.equal(torch.sort(ids[4:], -1).values, torch.sort(ref_ids[4:], -1).values)),
    "max_weight_error": float((weights - ref_w).abs().max()),
    "dtypes": [str(weights.dtype), str(ids.dtype)],
    "tied_row": ids[3].tolist(),
    "counters": counters.snapshot()["gemma4_router"],
}), flush=True)
