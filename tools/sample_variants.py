"""The sampler's two kernels timed side by side at the bench's shapes (`hotfuse bench`'s fp32 inputs and harness:
CUDA-graph replays of 20 calls, median of 30 replays), ROUNDS rounds with fresh graphs:
- race:    the column race kernel: programs of 1-4 tiles; the row's last program to arrive (an arrival counter)
           reads the programs' winners back from global memory and picks;
- cluster: the cluster race, forced at every shape: a thread-block cluster of 16 CTAs a row, each racing 1/16
           of the row's tiles; the CTAs exchange (score, token) through distributed shared memory and CTA 0
           writes the token. (* marks the kernel the plan picks.)
Each variant is a Tuning (`variant_tuning`) passed to temperature_sample. First checks that both draw the same
tokens (fp32 logits, the only ones the cluster race takes; masked and NaN logits, 1..64 rows, several seeds).
Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/sample_variants.py bash ci/gpu_run.sh OUT [ROUNDS]
Writes OUT/sample-variants.json."""
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
from hotfuse.kernels.sampling import temperature_sample
from hotfuse.kernels.sampling.plan import CLUSTER_RACE, COLUMN_DEPTH, COLUMN_LANES, DEFAULT_TUNING, \
    cluster_race_geometry

SHAPES = [(b, v) for v in (128256, 262144) for b in (1, 4, 16, 64, 256)]
VARIANTS = ("race", "cluster")


def variant_tuning(variant, vocab):
    """race: never the cluster race. cluster: the cluster race at every batch size, with as many tiles a CTA as
    this vocabulary needs."""
    if variant == "race":
        return replace(DEFAULT_TUNING, cluster_race=None)
    shipped = DEFAULT_TUNING.cluster_race
    tiles = triton.cdiv(vocab, COLUMN_DEPTH * COLUMN_LANES)
    table = replace(shipped, min_rows=1, max_rows=1 << 30,
                    tiles_per_cta=triton.next_power_of_2(triton.cdiv(tiles, shipped.ctas)))
    return replace(DEFAULT_TUNING, cluster_race=table)


def check_tokens(device):
    mismatches, compared = [], 0
    g = torch.Generator(device=device).manual_seed(1)
    for rows, vocab in ((1, 65537), (2, 70001), (3, 100000), (16, 128256), (64, 131072), (64, 262144), (5, 200000)):
        logits = torch.randn(rows, vocab, device=device, generator=g) * 3
        logits[0, : vocab // 3] = float("-inf")
        logits[-1, 5] = float("nan")
        temps = torch.rand(rows, device=device, generator=g) + 0.3
        race_tuning, cluster_tuning = variant_tuning("race", vocab), variant_tuning("cluster", vocab)
        assert cluster_race_geometry(rows, vocab, logits.dtype, device, cluster_tuning) is not None
        for offset in range(3):
            seeds = torch.arange(rows, dtype=torch.int64, device=device) * 1000 + offset
            race = temperature_sample(logits, temps, seeds, tuning=race_tuning)
            cluster = temperature_sample(logits, temps, seeds, tuning=cluster_tuning)
            assert not KERNEL_FAILURES.failed(CLUSTER_RACE), "the cluster race failed and fell back"
            compared += rows
            bad = (race != cluster).nonzero().flatten().tolist()
            if bad:
                mismatches.append({"rows": rows, "V": vocab, "offset": offset, "rows_differing": bad[:8]})
    return compared, mismatches


def main(out_dir, rounds=3):
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__} "
          f"copy {bandwidth / 1e9:.0f} GB/s", flush=True)
    compared, mismatches = check_tokens(device)
    print(f"tokens compared {compared}, mismatching {len(mismatches)}", flush=True)
    rows = []
    for b, v in SHAPES:
        logits, temps = _inputs(b, v, device, seed=b * 7919 + v)
        seeds = torch.arange(b, dtype=torch.int64, device=device)
        planned = "cluster" if cluster_race_geometry(b, v, logits.dtype, device) else "race"
        times = {name: [] for name in VARIANTS}
        for _ in range(rounds):
            for name in times:
                tuning = variant_tuning(name, v)
                times[name].append(time_in_graph(lambda: temperature_sample(logits, temps, seeds, tuning=tuning)))
        roofline = (4 * b * v + 8 * b) / bandwidth * 1e6
        row = {"B": b, "V": v, "roofline_us": roofline, "bar_us": max(5.0, 1.6 * roofline), "planned": planned,
               "us": times, "median_us": {name: statistics.median(t) for name, t in times.items()}}
        rows.append(row)
        print(f"B={b:4d} V={v:6d} bar {row['bar_us']:.2f}  " + "  ".join(
            f"{name}{'*' if name == planned else ''} {row['median_us'][name]:.2f} [{min(t):.2f}-{max(t):.2f}]"
            for name, t in times.items()), flush=True)
    with open(f"{out_dir}/sample-variants.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "copy_bandwidth_GBps": bandwidth / 1e9, "rounds": rounds, "tokens_compared": compared,
                   "token_mismatches": mismatches, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
