# Frozen experiment, kept as it ran on the H200 on 2026-11-22 (then tools/softmax_dependency_floors.py); not
# maintained and not imported by tests. Its private kernels and the hotfuse API it calls are those of that day, as are
# the paths and names it mentions (tools/..., OUT/...json), so it may no longer run against today's code. Its data:
# docs/experiments/2026-11-22-softmax-dependency-floors.json; the write-up:
# docs/experiments/2026-11-22-softmax-dependency-floors.md.
"""What the softmax's row-wide dependency costs, measured apart from its memory traffic.

At a softmax shape, times as CUDA-graph replays (hotfuse.bench.time_in_graph):
- an empty Triton kernel, with and without a cooperative launch (what `launch_cooperative_grid` adds);
- torch's copy_ (out of place) and an in-place `mul_(1.0)`: the traffic of an in-place softmax, no reduction;
- one Triton kernel over chunks of the flattened logits with three bodies: a copy (mode 0), and a softmax local
  to each program's chunk with two (mode 1) or one (mode 2) exponentials per element: every element read once
  and written once after a reduction over its program's chunk, but no wait for other programs (the results are
  not a row softmax; this is a lower bound for any single-kernel design);
each in and out of place, with and without a cooperative launch. Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/softmax_dependency_floors.py bash ci/gpu_run.sh OUT
Writes OUT/softmax-dependency-floors.json.
"""
import json
import sys

import torch
import triton
import triton.language as tl

from hotfuse.bench import time_in_graph


@triton.jit
def _chunk_kernel(x_ptr, y_ptr, n, CHUNK: tl.constexpr, MODE: tl.constexpr):
    cols = tl.program_id(0) * CHUNK + tl.arange(0, CHUNK)
    x = tl.load(x_ptr + cols, mask=cols < n, other=float("-inf"))
    if MODE == 0:
        y = x
    elif MODE == 1:
        m = tl.max(x, axis=0)
        s = tl.sum(tl.exp(x - m), axis=0)
        y = tl.exp(x - m) * (1.0 / s)
    else:
        m = tl.max(x, axis=0)
        e = tl.exp(x - m)
        y = e * (1.0 / tl.sum(e, axis=0))
    tl.store(y_ptr + cols, y, mask=cols < n)


@triton.jit
def _empty(x_ptr):
    tl.store(x_ptr + tl.program_id(0), 0.0)


def main(out_dir):
    rows = []
    scratch = torch.zeros(2048, device="cuda")
    for cooperative in (False, True):
        for programs in (132, 264, 528):
            us = time_in_graph(lambda: _empty[(programs,)](scratch, launch_cooperative_grid=cooperative))
            rows.append({"op": "empty", "programs": programs, "cooperative": cooperative, "us": us})
            print(f"empty kernel, {programs} programs, cooperative={cooperative}: {us:.2f} us", flush=True)
    for b, v in [(16, 128256), (4, 262144), (1, 262144)]:
        x = torch.randn(b, v, device="cuda")
        y = torch.empty_like(x)
        n = x.numel()
        copy_us = time_in_graph(lambda: y.copy_(x))
        mul_us = time_in_graph(lambda: x.mul_(1.0))
        rows.append({"op": "torch", "B": b, "V": v, "copy_": copy_us, "mul_(1.0) in place": mul_us})
        print(f"B={b} V={v}: torch copy_ {copy_us:.2f}, in-place mul_(1.0) {mul_us:.2f}", flush=True)
        for chunk, warps in [(2048, 4), (4096, 4), (4096, 8), (8192, 8), (8192, 16), (16384, 16)]:
            grid = (triton.cdiv(n, chunk),)
            line = []
            for mode in (0, 1, 2):
                for cooperative in (False, True):
                    for in_place in (False, True):
                        dst = x if in_place else y
                        us = time_in_graph(lambda: _chunk_kernel[grid](x, dst, n, CHUNK=chunk, MODE=mode,
                                                                       num_warps=warps,
                                                                       launch_cooperative_grid=cooperative))
                        rows.append({"op": "chunk kernel", "B": b, "V": v, "chunk": chunk, "warps": warps,
                                     "mode": mode, "cooperative": cooperative, "in_place": in_place, "us": us})
                        line.append(f"mode {mode}{' coop' if cooperative else ''}{' in place' if in_place else ''} "
                                    f"{us:.2f}")
            print(f"  chunk {chunk}, {warps} warps, {grid[0]} programs: " + ", ".join(line), flush=True)
    with open(f"{out_dir}/softmax-dependency-floors.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "triton": triton.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
