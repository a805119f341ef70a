"""Sweep the sampler kernels' geometry knobs on a GPU; prints the best setting per shape.

Run on the device machine (see ci/gpu_run.sh for the PYTHONPATH set-up):
    python3 tools/tune_sampler.py OUT_DIR [launches] [cluster] [softmax] [sample]
(default: cluster softmax sample). Writes OUT_DIR/tune_sampler.json. The chosen defaults are the fields of
hotfuse.kernels.sampling.plan.Tuning (DEFAULT_TUNING: softmax_configs, normalize_block_max, cluster_softmax,
sample_max_tiles_per_program, one_launch_sampling); every setting timed here is a Tuning of its own, passed to
the kernels explicitly.
"""

import itertools
import json
import sys
import time
from dataclasses import replace

import torch
import triton

from hotfuse.bench import time_in_graph
from hotfuse.kernels.sampling import temperature_sample, temperature_softmax
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, ClusterSoftmax, Config, cluster_softmax_geometry
from hotfuse.kernels.sampling.race import launch_sample
from hotfuse.kernels.sampling.softmax import _launch_cluster

SHAPES = [(b, v) for v in (128256, 262144) for b in (1, 4, 16, 64, 256)]

# The two-pass kernels at every shape, and the cluster kernel at every batch size whose row fits its spans.
TWO_PASS = replace(DEFAULT_TUNING, cluster_softmax=None)
CLUSTER_EVERY_BATCH = replace(DEFAULT_TUNING, cluster_softmax=ClusterSoftmax(
    short_span_min_rows=1, long_span_min_rows=1, long_span_min_elements=0))


def sweep(kind, configs, make):
    results = []
    for b, v in SHAPES:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        seeds = torch.arange(b, device="cuda", dtype=torch.int64)
        best = None
        for cfg in configs:
            fn = make(cfg, logits, temps, seeds)
            try:
                us = time_in_graph(fn)
            except Exception as exc:  # e.g. a cooperative grid larger than the device holds
                print(f"  {cfg}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                torch.cuda.synchronize()
                continue
            results.append({"kind": kind, "B": b, "V": v, "cfg": cfg, "us": us})
            if best is None or us < best[0]:
                best = (us, cfg)
        print(f"{kind} B={b} V={v}: best {best[0]:.2f} us with {best[1]}", flush=True)
    return results


def softmax_configs():
    for waves, (block, warps), normalize in itertools.product((2, 4, 8), ((1024, 4), (2048, 8)), (1024, 4096, 8192)):
        yield {"waves": waves, "block": block, "warps": warps, "normalize_block_max": normalize}


def sample_configs():
    """Column race: tiles per program (the column layout itself is fixed: it decides the tokens)."""
    for tiles in (1, 2, 3, 4, 6, 8):
        yield {"tiles_per_program": tiles}


def softmax_tuning(cfg):
    """The two-pass kernels with one geometry (`cfg`, from softmax_configs) at every size."""
    config = Config(cfg["block"], cfg["warps"], cfg["waves"])
    return replace(TWO_PASS, softmax_configs=((None, config),), normalize_block_max=cfg["normalize_block_max"])


def make_softmax(cfg, logits, temps, seeds):
    tuning = softmax_tuning(cfg)
    return lambda: temperature_softmax(logits, temps, out=logits, tuning=tuning)


def make_sample(cfg, logits, temps, seeds):
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)

    def draw():  # a given program length forces the column race kernel (never the cluster race) with that length
        launch_sample(logits, temps, seeds, out, DEFAULT_TUNING, cfg["tiles_per_program"])
        return out
    return draw


CLUSTER_GRID = [(b, v) for v in (32000, 65536, 128256, 151936, 262144, 524288)
                for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b * v <= 1 << 26]


def cluster_softmax(logits, temps, warps):
    """The cluster softmax in place with `warps` warps a CTA (the plan picks 8 or 16 by span; this times both),
    or None where its spans do not fit this vocabulary. Launched directly, so a kernel that cannot build or
    launch raises here instead of falling back to the two-pass kernels."""
    geometry = cluster_softmax_geometry(*logits.shape, logits.device, CLUSTER_EVERY_BATCH)
    if geometry is None:
        return None
    ctas, span, _planned_warps = geometry
    return lambda: _launch_cluster(logits, temps, logits, ctas, span, warps, CLUSTER_EVERY_BATCH)


def cluster(out_rows):
    """The cluster kernel (at every batch size, both warp counts) against the two-pass kernels (at their defaults)
    over more vocabularies than the bench's: where ClusterSoftmax's thresholds come from."""
    for b, v in CLUSTER_GRID:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        two_pass = time_in_graph(lambda: temperature_softmax(logits, temps, out=logits, tuning=TWO_PASS))
        out_rows.append({"kind": "two_pass", "B": b, "V": v, "us": two_pass})
        line = [f"two-pass {two_pass:.2f}"]
        for warps in (8, 16):
            fn = cluster_softmax(logits, temps, warps)
            if fn is None:
                continue
            us = time_in_graph(fn)
            out_rows.append({"kind": "cluster", "B": b, "V": v, "warps": warps, "us": us})
            line.append(f"cluster, {warps} warps {us:.2f}")
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)


def sampling_tuning(one_launch):
    """The default plan, the column race combining in its last program (one launch) or in a second launch."""
    return replace(DEFAULT_TUNING, one_launch_sampling=one_launch)


def launches(out_rows):
    """The column race in one launch (the row's last program combines) against two, at the default plan
    (where that plan picks the cluster race, both rows time it), with softmax at the defaults beside it."""
    for b, v in SHAPES:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        seeds = torch.arange(b, device="cuda", dtype=torch.int64)
        softmax_us = time_in_graph(lambda: temperature_softmax(logits, temps, out=logits))
        out_rows.append({"kind": "softmax", "B": b, "V": v, "us": softmax_us})
        line = [f"softmax {softmax_us:.2f}"]
        for one in (True, False):
            tuning = sampling_tuning(one)
            us = time_in_graph(lambda: temperature_sample(logits, temps, seeds, tuning=tuning))
            out_rows.append({"kind": f"column_race_{'one' if one else 'two'}_launch", "B": b, "V": v, "us": us})
            line.append(f"column race, {'1' if one else '2'} launch(es) {us:.2f}")
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)


def main(out, which):
    rows = []
    if "launches" in which:
        launches(rows)
    if "cluster" in which:
        cluster(rows)
    if "softmax" in which:
        rows += sweep("softmax", list(softmax_configs()), make_softmax)
    if "sample" in which:
        rows += sweep("sample", list(sample_configs()), make_sample)
    with open(f"{out}/tune_sampler.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["cluster", "softmax", "sample"])
