"""SGLang MoE top-k post-process (EPLB logical->physical map + padded-row mask).

SGLang 0.5.11-0.5.23 call the module global `_biased_grouped_topk_postprocess`, a
`torch.compile(dynamic=True)` helper, from `_post_process_topk_ids` on CUDA, even when there is
neither an EPLB map nor padding, paying Dynamo's guard cost on every MoE layer for nothing.

fused:      when there is nothing to do, return the ids at once (no device work, no compiled call);
            otherwise the engine's compiled helper runs (counted as a fallback until the kernel lands).
reference:  the engine's own unfused helpers, run eagerly (the helper's undecorated function).
"""

from __future__ import annotations

from hotfuse.adapters import AdapterPlan
from hotfuse.counters import count_fallback, count_fused
from hotfuse.flags import Mode
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "topk_postprocess"

POSTPROCESS = Target(
    module="sglang.srt.layers.moe.topk",
    qualname="_biased_grouped_topk_postprocess",
    params=("topk_ids", "expert_location_dispatch_info", "num_token_non_padded"),
    fingerprints={
        "daeca1c0c2ce607e": "0.5.11-0.5.23",
    },
)
TARGETS = (POSTPROCESS,)


def fused_postprocess(original, topk_ids, expert_location_dispatch_info, num_token_non_padded):
    if expert_location_dispatch_info is None and num_token_non_padded is None:
        count_fused(FUSION)
        return topk_ids
    count_fallback(FUSION, "eplb map or padding present: engine helper (kernel pending)")
    return original(topk_ids, expert_location_dispatch_info, num_token_non_padded)


def reference_postprocess(original, topk_ids, expert_location_dispatch_info, num_token_non_padded):
    eager = getattr(original, "__wrapped__", original)  # torch.compile keeps the plain function here
    count_fallback(FUSION, "disabled: engine's unfused eager helpers")
    return eager(topk_ids, expert_location_dispatch_info, num_token_non_padded)


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "engine's unfused helpers run eagerly instead of its compiled helper",
                           ((POSTPROCESS, reference_postprocess),))
    return AdapterPlan(State.ACTIVE, "no-op fast path when there is no EPLB map and no padding "
                       "(single-launch kernel pending)", ((POSTPROCESS, fused_postprocess),))
