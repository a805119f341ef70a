"""Compiles every Triton kernel of hotfuse ahead of time for NVIDIA targets, with the compile-time flags the launch
code picks on a GPU of each capability, and prints one JSON object: per capability the launch flags and, per
kernel, whether it compiled (and whether its PTX uses griddepcontrol). Run by tests/kernels/test_compile_targets.py
in a process of its own, without TRITON_INTERPRET (the interpreter replaces the kernels with Python functions that
cannot be compiled), once with the venv's Triton and once with each Triton the supported engines bring (on
PYTHONPATH in front). Needs no GPU: Triton ships ptxas.

    python compile_targets.py 8.0 8.9 9.0
"""

import json
import sys

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hotfuse.kernels import gemma4_router, moe_postprocess
from hotfuse.kernels.sampling import filtered, plan, race, search, settle, softmax
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

LOGITS = {"logits_ptr": "*fp32", "row_stride": "i32"}
SOFTMAX_PARTIALS = {**LOGITS, "temp_ptr": "*fp32", "part_max_ptr": "*fp32", "part_sum_ptr": "*fp32",
                    "vocab": "i32", "chunk": "i32", "chunks": "i32"}
SOFTMAX_NORMALIZE = {**LOGITS, "out_ptr": "*fp32", "out_row_stride": "i32", "temp_ptr": "*fp32",
                     "part_max_ptr": "*fp32", "part_sum_ptr": "*fp32", "rows": "i32", "vocab": "i32", "chunk": "i32",
                     "chunks": "i32"}
SOFTMAX_CLUSTER = {**LOGITS, "out_ptr": "*fp32", "out_row_stride": "i32", "temp_ptr": "*fp32", "vocab": "i32"}
SAMPLE_CLUSTER = {**LOGITS, "temp_ptr": "*fp32", "seed_ptr": "*i64", "out_ptr": "*i64", "vocab": "i32"}
SAMPLE = {**LOGITS, "temp_ptr": "*fp32", "seed_ptr": "*i64", "part_score_ptr": "*fp32", "part_index_ptr": "*i32",
          "counters_ptr": "*i32", "out_ptr": "*i64", "vocab": "i32", "tiles": "i32", "tiles_per_program": "i32",
          "chunks": "i32"}
SAMPLE_COMBINE = {"part_score_ptr": "*fp32", "part_index_ptr": "*i32", "out_ptr": "*i64", "chunks": "i32"}
FILTERED_SAMPLE = {**LOGITS, "temp_ptr": "*fp32", "top_k_ptr": "*i32", "top_p_ptr": "*fp32", "min_p_ptr": "*fp32",
                   "seed_ptr": "*i64", "buffer_ptr": "*i64", "out_ptr": "*i64", "thresholds_ptr": "*fp32",
                   "write_thresholds": "i32", "vocab": "i32", "blocks": "i32", "tiles": "i32", "state_ptr": "*fp32"}
SEARCH_TOP = {**LOGITS, "temp_ptr": "*fp32", "top_k_ptr": "*i32", "top_p_ptr": "*fp32", "min_p_ptr": "*fp32",
              "state_ptr": "*fp32", "part_top_ptr": "*fp32", "part_first_ptr": "*i32", "counters_ptr": "*i32",
              "out_ptr": "*i64", "vocab": "i32", "tiles_per_program": "i32", "chunks": "i32"}
SEARCH_PASS = {**LOGITS, "top_k_ptr": "*i32", "top_p_ptr": "*fp32", "state_ptr": "*fp32", "part_hist_ptr": "*i32",
               "part_tally_ptr": "*fp32", "counters_ptr": "*i32", "vocab": "i32", "tiles_per_program": "i32",
               "chunks": "i32"}
RACE_WINDOW = {**LOGITS, "temp_ptr": "*fp32", "seed_ptr": "*i64", "state_ptr": "*fp32", "part_score_ptr": "*fp32",
               "part_index_ptr": "*i32", "part_tally_ptr": "*fp32", "marks_ptr": "*i8", "counters_ptr": "*i32",
               "out_ptr": "*i64", "vocab": "i32", "tiles": "i32", "tiles_per_program": "i32", "chunks": "i32"}
SETTLE = {**LOGITS, "seed_ptr": "*i64", "top_k_ptr": "*i32", "top_p_ptr": "*fp32", "state_ptr": "*fp32",
          "part_score_ptr": "*fp32", "part_index_ptr": "*i32", "part_tally_ptr": "*fp32", "mark_words_ptr": "*i32",
          "columns_ptr": "*i32", "window_ptr": "*fp32", "out_ptr": "*i64", "vocab": "i32", "tiles": "i32",
          "chunks": "i32"}
STATE_LAYOUT = {"STATE": search.STATE_FIELDS, "S_STATUS": search.COLUMN["status"]}
ROUTE_TILE = {"gating_ptr": "*fp32", "row_stride": "i32", "scale_ptr": "*fp32", "weights_ptr": "*fp32",
              "ids_ptr": "*i32", "padding_ptr": "*i1", "tokens": "i32", "experts": "i32"}
ROUTE_LANES = {"gating_ptr": "*bf16", "row_words": "i32", "scale_ptr": "*fp32", "weights_ptr": "*fp32",
               "ids_ptr": "*i32", "padding_ptr": "*i1", "tokens": "i32", "experts": "i32"}
TOPK = {"ids_ptr": "*i32", "out_ptr": "*i32", "map_ptr": "*i32", "n_ptr": "*i64", "numel": "i32", "topk": "i32"}
GATHER = {"idx_ptr": "*i64", **{f"{kind}{i}": ("*i32" if kind in "sd" else "i32") for i in range(6)
                                for kind in ("s", "d", "w")}}


def compile_for(kernel, signature, constants, capability, **options):
    source = ASTSource(fn=kernel, signature={**signature, **{name: "constexpr" for name in constants}},
                       constexprs=constants)
    target = GPUTarget("cuda", capability[0] * 10 + capability[1], 32)
    return triton.compile(source, target=target, options={"num_warps": 4, **options})


def cases_for(capability):
    """What the launch code would compile on a GPU of this capability (rows 16, V 128256 for the cluster)."""
    torch.cuda.get_device_capability = lambda device=None: capability
    torch.version.hip = None
    device = torch.device("cuda", 0)
    tuning = DEFAULT_TUNING
    pdl = plan.grid_dependency_control(device)
    flags = {kernel: plan.dependency_flags(device, kernel, tuning) for kernel in plan.ENTRY_WAIT_KERNELS}
    trigger = flags["sample"][1]
    no_fma = {"enable_fp_fusion": False}
    cases = {
        "softmax_partials": (softmax._softmax_partials_kernel, SOFTMAX_PARTIALS,
                             {"BLOCK": 1024, "WAIT": flags["softmax_partials"][0], "TRIGGER": pdl, "GPU": True}, no_fma),
        "softmax_normalize": (softmax._softmax_normalize_kernel, SOFTMAX_NORMALIZE,
                              {"BLOCK": 1024, "CHUNKS_P2": 128, "WAIT": pdl, "TRIGGER": trigger, "GPU": True}, no_fma),
        "sample": (race._sample_column_race_kernel, SAMPLE,
                   {"DEPTH": plan.COLUMN_DEPTH, "LANES": plan.COLUMN_LANES, "GPU": True, "COMBINE_HERE": True,
                    "CHUNKS_P2": 64, "WAIT": flags["sample"][0], "TRIGGER": trigger}, {}),
        **{f"filtered_sample_{name}": (
            filtered._filtered_sample_kernel, {**FILTERED_SAMPLE, "logits_ptr": dtype},
            {"MIN_P_FIRST": rule.min_p_first, "TOP_P_RENORMALISED": rule.top_p_renormalised,
             "TOP_P_STRICT": rule.top_p_boundary_strict, "CAP": tuning.filter_candidates,
             "BINS": filtered.HISTOGRAM_BINS, "BLOCK": plan.COLUMN_DEPTH * plan.COLUMN_LANES,
             "DEPTH": plan.COLUMN_DEPTH, "LANES": plan.COLUMN_LANES, "GPU": True, **STATE_LAYOUT,
             "EXACT_KERNEL": search.STATUS["exact_kernel"]}, {"num_warps": plan.SAMPLE_WARPS})
           for name, rule, dtype in (("vllm", RULES["vllm"], "*fp32"),
                                     ("sglang_bf16", RULES["sglang"], "*bf16"))},
        "search_top": (search._search_top_kernel, SEARCH_TOP,
                       {"MIN_P_FIRST": True, "FIRST_SCALE": tuning.search_first_bins_per_depth, "CHUNKS_P2": 32,
                        "TILE": plan.COLUMN_DEPTH * plan.COLUMN_LANES},
                       {"num_warps": plan.SAMPLE_WARPS}),
        **{f"search_pass_{name}": (
            search._search_pass_kernel, {**SEARCH_PASS, "logits_ptr": dtype},
            {"FIRST": first, "LAST": last, "RENORMALISED": rule.top_p_renormalised,
             "STRICT": rule.top_p_boundary_strict, "NB": tuning.search_bins, "CAP": tuning.search_candidates,
             "CHUNKS_P2": 32, "TILE": plan.COLUMN_DEPTH * plan.COLUMN_LANES, "BLOCK": search.COUNT_STEP,
             "STEP": tuning.search_step_blocks}, {"num_warps": tuning.search_pass_warps})
           for name, rule, dtype, first, last in (("first_vllm", RULES["vllm"], "*fp32", True, False),
                                                  ("last_sglang_bf16", RULES["sglang"], "*bf16", False, True))},
        "race_window": (settle._race_window_kernel, RACE_WINDOW,
                        {"CHUNKS_P2": 64, "DEPTH": plan.COLUMN_DEPTH, "LANES": plan.COLUMN_LANES, "GPU": True},
                        {"num_warps": plan.SAMPLE_WARPS}),
        "settle": (settle._settle_kernel, SETTLE,
                   {"RENORMALISED": True, "STRICT": True, "CAP": tuning.search_candidates, "CHUNKS_P2": 64,
                    "BI": settle.PAIR_BLOCK, "DEPTH": plan.COLUMN_DEPTH, "LANES": plan.COLUMN_LANES,
                    "MARK_WORDS": settle.MARK_WORDS, "GPU": True}, {"num_warps": settle.SETTLE_WARPS}),
        "sample_combine": (race._sample_race_combine_kernel, SAMPLE_COMBINE, {"CHUNKS_P2": 64, "WAIT": pdl},
                           {"num_warps": 1}),
        "gemma4_route_tile": (gemma4_router._gemma4_route_kernel, ROUTE_TILE,
                              {"TOPK": 8, "TOPK_P2": 8, "BLOCK_T": 4, "BLOCK_E": 128, "KEY_BITS": 64, "NAN_FROM": 0,
                               "HAS_PADDING": True}, {"num_warps": 2}),
        "gemma4_route_lanes": (gemma4_router._gemma4_route_lanes_kernel, ROUTE_LANES,
                               {"TOPK": 8, "BLOCK_T": 8, "G": 4, "EVEN_E": True, "NAN_FROM": 0x7F80, "IS_BF16": True,
                                "HAS_PADDING": True}, {"num_warps": 1}),
        "topk_postprocess": (moe_postprocess._topk_postprocess_kernel, TOPK,
                             {"HAS_MAP": True, "HAS_PAD": True, "BLOCK": moe_postprocess.TOPK_BLOCK}, {}),
        "gather_rows": (moe_postprocess._gather_rows_kernel, GATHER, {"NUM": 6, "BLOCK": moe_postprocess.GATHER_BLOCK},
                        {}),
    }
    cluster = plan.cluster_softmax_geometry(16, 128256, device, tuning)
    if cluster is not None:
        ctas, span, warps = cluster
        cases["softmax_cluster"] = (softmax._softmax_cluster_kernel, SOFTMAX_CLUSTER,
                                    {"CTAS": ctas, "SPAN": span, "WAIT": flags["softmax_cluster"][0],
                                     "TRIGGER": trigger, "GPU": True}, {"num_warps": warps, "num_ctas": ctas, **no_fma})
    sample_cluster = plan.cluster_race_geometry(16, 128256, torch.float32, device, tuning)
    if sample_cluster is not None:
        ctas, per_cta = sample_cluster
        cases["sample_cluster"] = (race._sample_cluster_kernel, SAMPLE_CLUSTER,
                                   {"CTAS": ctas, "TILES": per_cta, "DEPTH": plan.COLUMN_DEPTH,
                                    "LANES": plan.COLUMN_LANES, "GPU": True, "WAIT": flags["sample"][0]},
                                   {"num_warps": plan.SAMPLE_WARPS, "num_ctas": ctas})
    waits = sorted(kernel for kernel, (wait, _) in flags.items() if wait)
    return {"dependent_launch": pdl, "entry_wait": waits, "trigger": trigger, "cluster": cluster is not None,
            "sample_cluster": sample_cluster is not None}, cases


def main(capabilities):
    report = {"triton": triton.__version__}
    for text in capabilities:
        capability = tuple(int(part) for part in text.split("."))
        flags, cases = cases_for(capability)
        if text == "8.0":  # the check can fail: the same first pass with griddepcontrol, as it once shipped
            cases["softmax_partials_with_griddepcontrol"] = (
                softmax._softmax_partials_kernel, SOFTMAX_PARTIALS,
                {"BLOCK": 1024, "WAIT": True, "TRIGGER": True, "GPU": True}, {"enable_fp_fusion": False})
        results = {}
        for name, (kernel, signature, constants, options) in cases.items():
            try:
                compiled = compile_for(kernel, signature, constants, capability, **options)
                results[name] = {"ok": True, "griddepcontrol": "griddepcontrol" in compiled.asm["ptx"]}
            except Exception as exc:  # the error text is the result
                results[name] = {"ok": False, "error": " ".join(str(exc).split())[-1000:]}
        report[text] = {"flags": flags, "kernels": results}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
