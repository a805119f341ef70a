"""Compiles the sampler's kernels ahead of time for NVIDIA targets, with the compile-time flags the launch code
picks on a GPU of each capability, and prints one JSON object: {case: "ok" or the error's last lines}.
Run by tests/kernels/test_compile_targets.py in a process of its own, without TRITON_INTERPRET (the interpreter
replaces the kernels with Python functions that cannot be compiled). Needs no GPU: Triton ships ptxas."""

import json
import sys

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hotfuse.kernels import sampling

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


def compile_for(kernel, signature, constants, capability, **options):
    source = ASTSource(fn=kernel, signature={**signature, **{name: "constexpr" for name in constants}},
                       constexprs=constants)
    target = GPUTarget("cuda", capability[0] * 10 + capability[1], 32)
    return triton.compile(source, target=target, options={"num_warps": 4, "enable_fp_fusion": False, **options})


def cases_for(capability):
    """What the launch code would compile on a GPU of this capability (rows 16, V 128256 for the cluster)."""
    torch.cuda.get_device_capability = lambda device=None: capability
    torch.version.hip = None
    device = torch.device("cuda", 0)
    pdl = sampling.grid_dependency_control(device)
    flags = {kernel: sampling._dependency_flags(device, kernel) for kernel in sampling.ENTRY_WAIT_KERNELS}
    trigger = flags["sample"][1]
    cases = {
        "softmax_partials": (sampling._softmax_partials_kernel, SOFTMAX_PARTIALS,
                             {"BLOCK": 1024, "WAIT": flags["softmax_partials"][0], "TRIGGER": pdl, "GPU": True}, {}),
        "softmax_normalize": (sampling._softmax_normalize_kernel, SOFTMAX_NORMALIZE,
                              {"BLOCK": 1024, "CHUNKS_P2": 128, "WAIT": pdl, "TRIGGER": trigger, "GPU": True}, {}),
        "sample": (sampling._sample_column_race_kernel, SAMPLE,
                   {"DEPTH": sampling.COLUMN_DEPTH, "LANES": sampling.COLUMN_LANES, "GPU": True, "COMBINE_HERE": True,
                    "CHUNKS_P2": 64, "WAIT": flags["sample"][0], "TRIGGER": trigger}, {}),
    }
    cluster = sampling._cluster_geometry(16, 128256, device)
    if cluster is not None:
        ctas, span, warps = cluster
        cases["softmax_cluster"] = (sampling._softmax_cluster_kernel, SOFTMAX_CLUSTER,
                                    {"CTAS": ctas, "SPAN": span, "WAIT": flags["softmax_cluster"][0],
                                     "TRIGGER": trigger, "GPU": True}, {"num_warps": warps, "num_ctas": ctas})
    sample_cluster = sampling._sample_cluster_geometry(16, 128256, torch.float32, device)
    if sample_cluster is not None:
        ctas, per_cta = sample_cluster
        cases["sample_cluster"] = (sampling._sample_cluster_kernel, SAMPLE_CLUSTER,
                                   {"CTAS": ctas, "TILES": per_cta, "DEPTH": sampling.COLUMN_DEPTH,
                                    "LANES": sampling.COLUMN_LANES, "GPU": True, "WAIT": flags["sample"][0]},
                                   {"num_warps": sampling.SAMPLE_WARPS, "num_ctas": ctas})
    waits = sorted(kernel for kernel, (wait, _) in flags.items() if wait)
    return {"dependent_launch": pdl, "entry_wait": waits, "trigger": trigger, "cluster": cluster is not None,
            "sample_cluster": sample_cluster is not None}, cases


def main(capabilities):
    report = {}
    for text in capabilities:
        capability = tuple(int(part) for part in text.split("."))
        flags, cases = cases_for(capability)
        if text == "8.0":  # the check can fail: the same first pass with griddepcontrol, as it once shipped
            cases["softmax_partials_with_griddepcontrol"] = (
                sampling._softmax_partials_kernel, SOFTMAX_PARTIALS,
                {"BLOCK": 1024, "WAIT": True, "TRIGGER": True, "GPU": True}, {})
        results = {}
        for name, (kernel, signature, constants, options) in cases.items():
            try:
                compiled = compile_for(kernel, signature, constants, capability, **options)
                results[name] = {"ok": True, "griddepcontrol": "griddepcontrol" in compiled.asm["ptx"]}
            except Exception as exc:  # the error text is the result
                results[name] = {"ok": False, "error": " ".join(str(exc).split())[-400:]}
        report[text] = {"flags": flags, "kernels": results}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
