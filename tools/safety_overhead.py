"""Host cost of the safety nets on the fast path (self-check done, shadow off): eager wall time per call of the
gemma4_route and topk_postprocess kernels alone (the checks' `fused`: run_gemma4_route, run_topk_postprocess,
inputs not checked) vs through hotfuse.safety.call (input check, counting, safety nets). Run on the GPU box:
  python tools/safety_overhead.py OUT_DIR
Writes OUT_DIR/safety_overhead.json.
"""

import json
import sys

import torch

from hotfuse import safety
from hotfuse.bench import time_host
from hotfuse.kernels.checks import ROUTE, TOPK


def per_call(fn, n=5000):
    for _ in range(200):  # warm caches and allocator first
        fn()
    return time_host(fn, calls=n)


def main(out):
    dev = torch.device("cuda")
    gating, scale = torch.randn(1, 128, device=dev, dtype=torch.bfloat16), torch.rand(128, device=dev) + 0.5
    ids, table, n = (torch.randint(0, 256, (1, 8), device=dev, dtype=torch.int32),
                     torch.randperm(256, device=dev).to(torch.int32), torch.tensor(1, device=dev))
    safety.call(ROUTE, gating, scale, 8)   # self-check happens here, once
    safety.call(TOPK, ids, table, n)
    rows = {
        "gemma4_route direct": per_call(lambda: ROUTE.fused(gating, scale, 8)),
        "gemma4_route via safety.call": per_call(lambda: safety.call(ROUTE, gating, scale, 8)),
        "topk_postprocess direct": per_call(lambda: TOPK.fused(ids, table, n)),
        "topk_postprocess via safety.call": per_call(lambda: safety.call(TOPK, ids, table, n)),
    }
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "us_per_eager_call": rows,
           "self_check": safety.snapshot()}
    print(json.dumps(doc, indent=1))
    with open(f"{out}/safety_overhead.json", "w") as fh:
        json.dump(doc, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
