"""Per-launch GPU times of filtered sampling inside a CUDA graph (torch.profiler's kernel records of graph replays:
the largest-logit launch, each pass of the split search, the race and the one-program kernel) and, from one eager
call, how many rows are in each status (search.STATUS: count, settle, done, skip, exact_kernel) after each search
launch. For the device machine: it says which launch costs what and whether rows reach the one-program kernel.

    python3 tools/profile_filtered.py [--rows 256 64 16 1] [--vocab 128256] [--set search_step_blocks=1 ...]
    TRITON_INTERPRET=1 python3 tools/profile_filtered.py --statuses-only --rows 16  # no GPU needed

(with hotfuse importable, as tools/bench_filtered.py). The bench's inputs (`bench.filtered_sampling.batch`), Qwen3's
and Llama's parameters and min-p alone, vLLM's rule. Prints, per shape, each launch's median time over the replays.
The statuses (how many rows each pass counts, and which launch decides them) do not depend on the machine but for
fp32 rounding at a boundary, so `--statuses-only` gives them without timing, also on a CPU in Triton's interpreter
(slowly: about 2 s a row at V = 128256).
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
from dataclasses import replace

import torch

from hotfuse.bench import graph_of
from hotfuse.bench.filtered_sampling import PARAMETERS as BENCH_PARAMETERS, batch
from hotfuse.kernels.sampling import run_filtered_sample, search
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

REPLAYS = 20
PARAMETERS = [BENCH_PARAMETERS[i] for i in (0, 1, 3)]  # the bench's: Qwen3's, Llama's, min-p alone


class Statuses:
    """Stands in for a search kernel: `kernel[grid](...)` launches it and keeps a copy of the rows' statuses."""

    def __init__(self, kernel, name, records, state_arg):
        self.kernel, self.name, self.records, self.state_arg = kernel, name, records, state_arg

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.kernel[grid](*args, **kwargs)
            self.records.append((self.name, args[self.state_arg][:, search.COLUMN["status"]].clone()))
        return launch


def statuses(call) -> list[str]:
    records = []
    top, passes = search._search_top_kernel, search._search_pass_kernel
    search._search_top_kernel = Statuses(top, "top", records, 6)
    search._search_pass_kernel = Statuses(passes, "pass", records, 4)
    try:
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    finally:
        search._search_top_kernel, search._search_pass_kernel = top, passes
    return [f"{name} {torch.bincount(s.int(), minlength=5).tolist()}" for name, s in records]


def launch_times(call) -> list[tuple[str, float]]:
    """(kernel name, median µs) of each launch of one call, in launch order, from REPLAYS graph replays."""
    graph = graph_of(call, calls=1)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(REPLAYS):
            graph.replay()
        torch.cuda.synchronize()
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                      and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()),
                     key=lambda e: e.time_range.start)
    per_call = len(kernels) // REPLAYS
    out = []
    for i in range(per_call):
        times = [kernels[r * per_call + i].time_range.elapsed_us() for r in range(REPLAYS)]
        out.append((kernels[i].name, statistics.median(times)))
    del graph
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 64, 16, 1])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--set", nargs="*", default=[], help="tuning fields (plan.Tuning), as name=python-literal")
    parser.add_argument("--statuses-only", action="store_true",
                        help="no timing, only the statuses (without a GPU: Triton's interpreter, TRITON_INTERPRET=1)")
    args = parser.parse_args()
    tuning = replace(DEFAULT_TUNING, **{name: ast.literal_eval(value) for name, value in
                                        (field.split("=", 1) for field in args.set)})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton's interpreter)"
    print(where, "torch", torch.__version__, tuning)
    for rows in args.rows:
        seeds = torch.arange(rows, device=device)
        for params in PARAMETERS:
            top_k, top_p, min_p, _greedy_every = params
            logits, t, k, p, q = batch(rows, args.vocab, params, device)  # the bench's inputs

            def call():
                return run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"], tuning=tuning)

            print(f"B={rows} V={args.vocab} top_k={top_k} top_p={top_p} min_p={min_p}:")
            if not args.statuses_only:
                times = launch_times(call)
                print(f"  {sum(us for _, us in times):.1f} us in {len(times)} launches")
                for name, us in times:
                    print(f"  {name[:60]:60s} {us:8.1f} us")
            print("  statuses after each search launch:", "; ".join(statuses(call)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
