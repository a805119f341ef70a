"""Floors of the bench harness at the softmax shapes, to read the temperature_softmax bars against.

An empty Triton kernel, torch's in-place multiply (reads and writes every element once, like an in-place
softmax, with no reduction and no synchronisation), a copy, and temperature_softmax in place, all as
CUDA-graph replays (hotfuse.bench.time_in_graph). Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/softmax_floors.py bash ci/gpu_run.sh OUT
Writes OUT/softmax-floors.json.
"""
import sys, json
import torch, triton, triton.language as tl
from hotfuse.bench import time_in_graph
from hotfuse.kernels import sampling as S

@triton.jit
def _empty(x_ptr):
    tl.store(x_ptr + tl.program_id(0), 0.0)

out_dir = sys.argv[1]
x1 = torch.zeros(1024, device="cuda")
rows = [{"op": "empty triton kernel, 1 program", "us": time_in_graph(lambda: _empty[(1,)](x1))},
        {"op": "empty triton kernel, 264 programs", "us": time_in_graph(lambda: _empty[(264,)](x1))}]
print(rows, flush=True)
for b, v in [(1, 128256), (4, 128256), (16, 128256), (1, 262144), (4, 262144), (16, 262144), (64, 128256)]:
    g = torch.Generator(device="cuda").manual_seed(b * 7919 + v)
    logits = torch.randn(b, v, device="cuda", generator=g) * 4
    temps = torch.rand(b, 1, device="cuda", generator=g) * 1.5 + 0.25
    work = logits.clone()
    other = torch.empty_like(logits)
    r = {"B": b, "V": v,
         "hotfuse softmax in place": time_in_graph(lambda: S.temperature_softmax(work, temps, out=work)),
         "torch in-place mul_ (no reduction)": time_in_graph(lambda: work.mul_(temps)),
         "torch copy_": time_in_graph(lambda: other.copy_(logits)),
         "bar (PERF.md copy bandwidth 4.18 TB/s)": max(5.0, 1.6 * 8 * b * v / 4.18e12 * 1e6)}
    print({k: (round(u, 2) if isinstance(u, float) else u) for k, u in r.items()}, flush=True)
    rows.append(r)
json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__, "rows": rows},
          open(f"{out_dir}/softmax-floors.json", "w"), indent=1)
