"""SGLang MoE top-k post-process (EPLB logical->physical map + padded-row mask).

SGLang 0.5.11-0.5.23 call the module global `_biased_grouped_topk_postprocess`, a
`torch.compile(dynamic=True)` helper, from `_post_process_topk_ids` on CUDA, even when there is
neither an EPLB map nor padding, paying Dynamo's guard cost on every MoE layer for nothing.

fused:      nothing to do (no EPLB map, no padding): the ids come back at once (no device work, no
            compiled call). Static dispatch and/or padding: hotfuse's single-launch topk_postprocess into a
            new tensor, as the engine's helper returns one (its input may still be referenced, e.g. by the
            routed-experts capture). Dynamic / lp dispatch: the engine's compiled helper, counted.
reference:  the engine's own unfused helpers, run eagerly (the helper's undecorated function).
"""

from __future__ import annotations

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.kernels import checks
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
    info = expert_location_dispatch_info
    if info is None and num_token_non_padded is None:
        safety.record_fused(FUSION)
        return topk_ids
    table = None
    if info is not None:
        table = getattr(info, "partial_logical_to_rank_dispatch_physical_map", None)
        if info.ep_dispatch_algorithm != "static" or table is None:
            safety.record_fallback(FUSION, f"{info.ep_dispatch_algorithm} dispatch: engine helper")
            return original(topk_ids, info, num_token_non_padded)
    return safety.call(checks.TOPK, topk_ids, table, num_token_non_padded)  # into a new tensor, as the helper


def reference_postprocess(original, topk_ids, expert_location_dispatch_info, num_token_non_padded):
    eager = getattr(original, "__wrapped__", original)  # torch.compile keeps the plain function here
    safety.record_fallback(FUSION, "disabled: engine's unfused eager helpers")
    return eager(topk_ids, expert_location_dispatch_info, num_token_non_padded)


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "engine's unfused helpers run eagerly instead of its compiled helper",
                           ((POSTPROCESS, reference_postprocess),))
    return AdapterPlan(State.ACTIVE, "single launch for static dispatch and padding; nothing at all when "
                       "there is neither (dynamic/lp dispatch: engine helper)", ((POSTPROCESS, fused_postprocess),))
