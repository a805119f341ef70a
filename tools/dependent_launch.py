"""What programmatic dependent launch at a kernel's entry is worth for the sampler's kernels (Hopper).

Settings of Tuning.entry_wait / Tuning.trigger_next (hotfuse.kernels.sampling.plan), timed in one process at the
bench's shapes (fp32 logits, `hotfuse bench`'s inputs):
- off:     only the second softmax pass launches as a dependent (of the first), as shipped before;
- wait:    the first pass, the cluster softmax and the sampler (ENTRY_WAIT_KERNELS) also launch as dependents of
           whatever ran before them, waiting (griddepcontrol.wait) before their first memory access;
- wait+trigger: and those kernels and the second pass let the next launch start once past that wait.
(What ships, DEFAULT_TUNING: the first pass's entry wait alone, a per-kernel pick from these timings.)
Two harnesses, both CUDA-graph replays of 20 calls, median of 30 replays:
- back to back: the op alone, 20 times (the bench's harness);
- after a torch kernel: each call preceded by a small torch kernel (launched without the attribute), minus the
  same graph without the op: what the op costs after an unrelated kernel, as in an engine.
The softmax runs through each of its kernels, forced (* marks the one the plan picks with the thresholds as
shipped); the sampler in one launch (as shipped) and in two (the race lets the combine launch at once). Each
(setting, kernel) is a Tuning (`tuning_for`) passed to the kernels. Outputs are checked bitwise against the `off`
setting. Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/dependent_launch.py bash ci/gpu_run.sh OUT [ROUNDS]
Writes OUT/dependent-launch.json."""
import json
import statistics
import sys
import time
from dataclasses import replace

import torch
import triton

from hotfuse.bench import copy_bandwidth, time_in_graph
from hotfuse.bench.sampler import _inputs
from hotfuse.kernels import KERNEL_FAILURES
from hotfuse.kernels.sampling import softmax_variant, temperature_sample, temperature_softmax
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, ENTRY_WAIT_KERNELS, ClusterSoftmax

SHAPES = [(b, v) for v in (128256, 262144) for b in (1, 4, 16, 64, 256)]
SETTINGS = {"off": (frozenset(), False), "wait": (frozenset(ENTRY_WAIT_KERNELS), False),
            "wait+trigger": (frozenset(ENTRY_WAIT_KERNELS), True)}
# The softmax kernels forced: the cluster kernel at every batch size whose row fits its spans, or never.
FORCED = {"cluster": ClusterSoftmax(short_span_min_rows=1, long_span_min_rows=1, long_span_min_elements=0),
          "two_pass": None}


def tuning_for(setting, kernel=None):
    """The tuning for a SETTINGS name and a kernel: a FORCED softmax kernel, "two_launches" (the column race
    combining in a second launch, which the race lets launch at once and which waits for the race's partials),
    or None (the plan as shipped)."""
    entry_wait, trigger_next = SETTINGS[setting]
    tuning = replace(DEFAULT_TUNING, entry_wait=entry_wait, trigger_next=trigger_next,
                     one_launch_sampling=kernel != "two_launches")
    if kernel in FORCED:
        tuning = replace(tuning, cluster_softmax=FORCED[kernel])
    return tuning


def op_call(op, work, logits0, temps, seeds, tuning):
    """The timed call: the in-place softmax of `work`, or a draw from `logits0`."""
    if op == "softmax":
        return lambda: temperature_softmax(work, temps, out=work, tuning=tuning)
    return lambda: temperature_sample(logits0, temps, seeds, tuning=tuning)


def after_torch_kernel(fn, scratch):
    both = time_in_graph(lambda: (scratch.add_(1.0), fn()))
    alone = time_in_graph(lambda: scratch.add_(1.0))
    return both - alone, alone


def main(out_dir, rounds=2):
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__} "
          f"copy {bandwidth / 1e9:.0f} GB/s", flush=True)
    scratch = torch.zeros(1024, device=device)
    rows, mismatches = [], []
    for b, v in SHAPES:
        logits0, temps = _inputs(b, v, device, seed=b * 7919 + v)
        seeds = torch.arange(b, dtype=torch.int64, device=device)
        work = logits0.clone()
        planned = softmax_variant(b, v, device)[0]
        kernels = [kernel for kernel in FORCED  # each kernel that can run this vocabulary
                   if softmax_variant(b, v, device, tuning_for("off", kernel))[0] == kernel]
        ops = [("softmax", kernel) for kernel in kernels] + [("sample", None), ("sample", "two_launches")]
        reference = {}
        for op, kernel in ops:  # correctness first: every setting gives the off setting's bits
            for setting in SETTINGS:
                tuning = tuning_for(setting, kernel)
                if op == "softmax":
                    work.copy_(logits0)
                    got = temperature_softmax(work, temps, out=work, tuning=tuning).clone()
                else:
                    got = temperature_sample(logits0, temps, seeds, tuning=tuning)
                torch.cuda.synchronize()
                key = (op, kernel)
                if setting == "off":
                    reference[key] = got
                elif not torch.equal(got, reference[key]):
                    mismatches.append({"B": b, "V": v, "op": op, "kernel": kernel, "setting": setting})
        # A kernel or dependent launch that failed here is replaced from then on: the timings would not be its.
        if KERNEL_FAILURES.snapshot():
            raise RuntimeError(f"fell back: {KERNEL_FAILURES.snapshot()}")
        for op, kernel in ops:
            times = {s: {"back_to_back": [], "after_torch_kernel": []} for s in SETTINGS}
            for _ in range(rounds):
                for setting in SETTINGS:  # interleaved, so drift hits every setting alike
                    fn = op_call(op, work, logits0, temps, seeds, tuning_for(setting, kernel))
                    work.copy_(logits0)
                    times[setting]["back_to_back"].append(time_in_graph(fn))
                    work.copy_(logits0)
                    times[setting]["after_torch_kernel"].append(after_torch_kernel(fn, scratch)[0])
            row = {"B": b, "V": v, "op": op, "kernel": kernel or "column_race",
                   "planned": kernel == planned or (op == "sample" and kernel is None),
                   "us": {s: {h: statistics.median(t) for h, t in by.items()} for s, by in times.items()},
                   "all_us": times}
            rows.append(row)
            print(f"{op:7s} B={b:3d} V={v:6d} {row['kernel']:12s}{'*' if row['planned'] else ' '} "
                  + "  ".join(f"{s}: {row['us'][s]['back_to_back']:6.2f} / {row['us'][s]['after_torch_kernel']:6.2f}"
                              for s in SETTINGS), flush=True)
    print("bitwise mismatches against the off setting:", mismatches or "none", flush=True)
    with open(f"{out_dir}/dependent-launch.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "copy_bandwidth_GBps": bandwidth / 1e9, "settings": {k: [sorted(w), t] for k, (w, t) in SETTINGS.items()},
                   "columns": "us[setting][back_to_back | after_torch_kernel] (median over rounds)",
                   "mismatches": mismatches, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
