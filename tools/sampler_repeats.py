"""Repeat the sampler bench at the shapes that sit near their bars, to show the spread between runs of the same
harness (`hotfuse bench`'s inputs and timing: CUDA-graph replays, 20 calls per graph, median of 30 replays).
Each repeat builds fresh graphs; the copy bandwidth (the roofline's) is measured in the same process. Run on the
device machine:
    HOTFUSE_GPU_SCRIPT=tools/sampler_repeats.py bash ci/gpu_run.sh OUT [REPEATS]
Writes OUT/sampler-repeats.json."""
import json
import sys
import time

import torch
import triton

from hotfuse.bench import copy_bandwidth, time_in_graph
from hotfuse.bench.sampler import _inputs
from hotfuse.kernels.sampling import cluster_race_geometry, softmax_variant, temperature_sample, \
    temperature_softmax

SHAPES = [(16, 128256), (4, 262144), (4, 128256), (16, 262144)]


def main(out_dir, repeats=5):
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__} "
          f"copy {bandwidth / 1e9:.0f} GB/s", flush=True)
    rows = []
    for b, v in SHAPES:
        logits, temps = _inputs(b, v, device, seed=b * 7919 + v)
        seeds = torch.arange(b, dtype=torch.int64, device=device)
        for op, fn, nbytes, bar_floor in (
                ("softmax", lambda: temperature_softmax(logits, temps, out=logits), 8 * b * v, 5.0),
                ("sample", lambda: temperature_sample(logits, temps, seeds), 4 * b * v + 8 * b, 5.0)):
            roofline = nbytes / bandwidth * 1e6
            bar = max(bar_floor, 1.6 * roofline)
            times = [time_in_graph(fn) for _ in range(repeats)]
            if op == "softmax":
                kernel = softmax_variant(b, v, device)[0]
            else:
                kernel = "cluster_race" if cluster_race_geometry(b, v, logits.dtype, device) else "column_race"
            rows.append({"op": op, "B": b, "V": v, "kernel": kernel, "us": times, "roofline_us": roofline, "bar_us": bar})
            print(f"{op} B={b} V={v} ({kernel}): " + " ".join(f"{t:.2f}" for t in times)
                  + f"  (bar {bar:.2f}, met {sum(t <= bar for t in times)}/{repeats})", flush=True)
    with open(f"{out_dir}/sampler-repeats.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "copy_bandwidth_GBps": bandwidth / 1e9, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
