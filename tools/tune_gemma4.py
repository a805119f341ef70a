"""Sweep gemma4_route's geometry (tokens per program, warps) on a GPU, beside the engines' kernels.

    python3 tools/tune_gemma4.py OUT_DIR [sglang_gemma4.py [vllm_gemma4.py]]
Both kernels are swept: the sorted-lanes kernel (bf16/fp16, 33-256 experts) and the [BLOCK_T, E] tile kernel
(everything else; here forced on bf16 for comparison). Writes OUT_DIR/tune_gemma4.json; the chosen defaults
live in hotfuse.kernels.gemma4_router.LANES_GEOMETRY and GEOMETRY.
"""

import itertools
import json
import sys

import torch

from hotfuse.bench import load_upstream_module, time_in_graph
from hotfuse.kernels import gemma4_router as G

SHAPES = [(t, e) for e in (128, 256) for t in (1, 64, 1024, 4096, 16384, 65536)]
LANES = [(t, w) for t, w in itertools.product((1, 2, 4, 8, 16), (1, 2, 4, 8)) if t >= w]
TILE = [(4, 1), (4, 2), (8, 1), (2, 1), (1, 1)]

if __name__ == "__main__":
    out = sys.argv[1]
    sglang = load_upstream_module(sys.argv[2], "sg") if len(sys.argv) > 2 else None
    vllm = load_upstream_module(sys.argv[3], "vl") if len(sys.argv) > 3 else None
    takes = G.lanes_kernel_takes
    rows = []
    for t, e in SHAPES:
        x = (torch.randn(t, e, device="cuda") * 2).to(torch.bfloat16)
        scale = torch.rand(e, device="cuda") + 0.5
        refs = {"sglang": time_in_graph(lambda: sglang.gemma4_fused_routing(x, scale, 8)) if sglang else None,
                "vllm": time_in_graph(lambda: vllm.gemma4_fused_routing_kernel_triton(x, 8, scale)) if vllm else None}
        best = {}
        for kernel, geometries, table in (("lanes", LANES, G.LANES_GEOMETRY), ("tile", TILE, G.GEOMETRY)):
            G.lanes_kernel_takes = takes if kernel == "lanes" else (lambda *a: False)
            saved = list(table)
            for tokens, warps in geometries:
                table[:] = [(0, tokens, warps)]
                try:
                    us = time_in_graph(lambda: G.gemma4_route(x, scale, 8))
                except Exception as exc:
                    print(f"  T={t} E={e} {kernel} tokens={tokens} warps={warps}: {type(exc).__name__}: {exc}",
                          flush=True)
                    continue
                rows.append({"T": t, "E": e, "kernel": kernel, "tokens": tokens, "warps": warps, "us": us, **refs})
                if kernel not in best or us < best[kernel][0]:
                    best[kernel] = (us, tokens, warps)
            table[:] = saved
        G.lanes_kernel_takes = takes
        line = "  ".join(f"{k}: {v[0]:.2f} us ({v[1]} tok/{v[2]} warps)" for k, v in best.items())
        print(f"T={t} E={e}: {line}; sglang {refs['sglang']}; vllm {refs['vllm']}", flush=True)
    with open(f"{out}/tune_gemma4.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, fh)
