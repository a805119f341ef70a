"""Sweep gemma4_route's geometry (tokens per program, warps) on a GPU, beside the engines' kernels.

    python3 tools/tune_gemma4.py OUT_DIR [sglang_gemma4.py [vllm_gemma4.py]]
Both kernels are swept: the sorted-lanes kernel (bf16/fp16, 33-256 experts) and the [BLOCK_T, E] tile kernel
(everything else; here forced on bf16 for comparison). Writes OUT_DIR/tune_gemma4.json; the chosen defaults
live in hotfuse.kernels.gemma4_router.RouteTuning.
"""

import itertools
import json
import sys
from dataclasses import replace

import torch

from hotfuse.bench import load_upstream_module, time_in_graph
from hotfuse.kernels import gemma4_router as G

SHAPES = [(t, e) for e in (128, 256) for t in (1, 64, 1024, 4096, 16384, 65536)]
LANES = [(t, w) for t, w in itertools.product((1, 2, 4, 8, 16), (1, 2, 4, 8)) if t >= w]
TILE = [(4, 1), (4, 2), (8, 1), (2, 1), (1, 1)]


def forced_geometry(kernel, tokens, warps):
    """The tuning that routes with `kernel` ("lanes" or "tile") at `tokens` tokens per program and `warps` warps,
    for every token count."""
    table = ((0, tokens, warps),)
    if kernel == "lanes":
        return replace(G.DEFAULT_ROUTE_TUNING, lanes_geometry=table)
    return replace(G.DEFAULT_ROUTE_TUNING, tile_geometry=table, use_lanes=False)


def main(out, sglang_path=None, vllm_path=None):
    sglang = load_upstream_module(sglang_path, "sg") if sglang_path else None
    vllm = load_upstream_module(vllm_path, "vl") if vllm_path else None
    rows = []
    for t, e in SHAPES:
        x = (torch.randn(t, e, device="cuda") * 2).to(torch.bfloat16)
        scale = torch.rand(e, device="cuda") + 0.5
        refs = {"sglang": time_in_graph(lambda: sglang.gemma4_fused_routing(x, scale, 8)) if sglang else None,
                "vllm": time_in_graph(lambda: vllm.gemma4_fused_routing_kernel_triton(x, 8, scale)) if vllm else None}
        best = {}
        for kernel, geometries in (("lanes", LANES), ("tile", TILE)):
            for tokens, warps in geometries:
                tuning = forced_geometry(kernel, tokens, warps)
                try:
                    us = time_in_graph(lambda: G.gemma4_route(x, scale, 8, tuning=tuning))
                except Exception as exc:
                    print(f"  T={t} E={e} {kernel} tokens={tokens} warps={warps}: {type(exc).__name__}: {exc}",
                          flush=True)
                    continue
                rows.append({"T": t, "E": e, "kernel": kernel, "tokens": tokens, "warps": warps, "us": us, **refs})
                if kernel not in best or us < best[kernel][0]:
                    best[kernel] = (us, tokens, warps)
        line = "  ".join(f"{k}: {v[0]:.2f} us ({v[1]} tok/{v[2]} warps)" for k, v in best.items())
        print(f"T={t} E={e}: {line}; sglang {refs['sglang']}; vllm {refs['vllm']}", flush=True)
    with open(f"{out}/tune_gemma4.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, fh)


if __name__ == "__main__":
    main(*sys.argv[1:4])
