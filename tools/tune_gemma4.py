"""Sweep gemma4_route's geometry (tokens per program, warps) on a GPU, beside the engines' kernels.

    python3 tools/tune_gemma4.py OUT_DIR [sglang_gemma4.py vllm_gemma4.py]
Writes OUT_DIR/tune_gemma4.json; the chosen default lives in hotfuse.kernels.gemma4_router.GEOMETRY.
"""

import itertools
import json
import sys

import torch

from hotfuse.bench import load_upstream_module, time_in_graph
from hotfuse.kernels import gemma4_router as G

SHAPES = [(t, e) for e in (128, 256) for t in (1, 64, 1024, 4096, 16384, 65536)]

if __name__ == "__main__":
    out = sys.argv[1]
    sglang = load_upstream_module(sys.argv[2], "sg") if len(sys.argv) > 2 else None
    rows = []
    for t, e in SHAPES:
        x = (torch.randn(t, e, device="cuda") * 2).to(torch.bfloat16)
        scale = torch.rand(e, device="cuda") + 0.5
        ref = time_in_graph(lambda: sglang.gemma4_fused_routing(x, scale, 8)) if sglang else None
        best = None
        for tokens, warps in itertools.product((1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8)):
            G.GEOMETRY.update(small=(tokens, warps), large=(tokens, warps))
            try:
                us = time_in_graph(lambda: G.gemma4_route(x, scale, 8))
            except Exception as exc:
                print(f"  T={t} E={e} tokens={tokens} warps={warps}: {type(exc).__name__}", flush=True)
                continue
            rows.append({"T": t, "E": e, "tokens": tokens, "warps": warps, "us": us, "sglang_us": ref})
            if best is None or us < best[0]:
                best = (us, tokens, warps)
        print(f"T={t} E={e}: best {best[0]:.2f} us (tokens/program {best[1]}, warps {best[2]}); "
              f"sglang {ref:.2f} us" if ref else "", flush=True)
    with open(f"{out}/tune_gemma4.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh)
