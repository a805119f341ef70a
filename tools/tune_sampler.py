"""Sweep the sampler kernels' geometry knobs on a GPU; prints the best setting per shape.

Run on the device machine (see ci/gpu_run.sh for the PYTHONPATH set-up):
    python3 tools/tune_sampler.py OUT_DIR
Writes OUT_DIR/tune_sampler.json. The chosen defaults live in hotfuse.kernels.sampling (SOFTMAX_CONFIGS,
NORMALIZE_BLOCK_MAX, CLUSTER, SAMPLE_MAX_TILES_PER_PROGRAM).
"""

import itertools
import json
import sys
import time

import torch
import triton

from hotfuse.bench import time_in_graph
from hotfuse.kernels import sampling as S

SHAPES = [(b, v) for v in (128256, 262144) for b in (1, 4, 16, 64, 256)]


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


def apply(cfg):
    S.CLUSTER["enabled"] = False  # the two-pass kernels at every shape
    config = S.Config(cfg["block"], cfg["warps"], cfg["waves"])
    S.SOFTMAX_CONFIGS = ((None, config),)
    S.NORMALIZE_BLOCK_MAX = cfg["normalize_block_max"]


def make_softmax(cfg, logits, temps, seeds):
    def fn():
        apply(cfg)
        S.temperature_softmax(logits, temps, out=logits)
    return fn


def make_sample(cfg, logits, temps, seeds):
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)

    def fn():
        S._launch_sample(logits, temps, seeds, out, cfg["tiles_per_program"])
    return fn


CLUSTER_GRID = [(b, v) for v in (32000, 65536, 128256, 151936, 262144, 524288)
                for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b * v <= 1 << 26]


def cluster(out_rows):
    """The cluster kernel (at every batch size, both warp counts) against the two-pass kernels (at their defaults)
    over more vocabularies than the bench's: where CLUSTER's thresholds come from."""
    plan = dict(S.CLUSTER)
    geometry = S._cluster_geometry
    for b, v in CLUSTER_GRID:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        S.CLUSTER.update(plan, enabled=False)
        two_pass = time_in_graph(lambda: S.temperature_softmax(logits, temps, out=logits))
        out_rows.append({"kind": "two_pass", "B": b, "V": v, "us": two_pass})
        line = [f"two-pass {two_pass:.2f}"]
        for warps in (8, 16):
            S.CLUSTER.update(plan, enabled=True, short_span_min_rows=1, long_span_min_rows=1, long_span_min_elements=0)
            S._cluster_geometry = lambda r, vv, d, w=warps: (None if (g := geometry(r, vv, d)) is None
                                                               else (g[0], g[1], w))  # this warp count
            if S._cluster_geometry(b, v, logits.device) is None:
                continue
            us = time_in_graph(lambda: S.temperature_softmax(logits, temps, out=logits))
            if not S.CLUSTER["enabled"]:
                raise RuntimeError("the cluster kernel fell back to the two-pass kernels")
            out_rows.append({"kind": "cluster", "B": b, "V": v, "warps": warps, "us": us})
            line.append(f"cluster, {warps} warps {us:.2f}")
        S._cluster_geometry = geometry
        S.CLUSTER.update(plan)
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)


def launches(out_rows):
    """The column race in one launch (the row's last program combines) against two, at the default plan,
    with softmax at the defaults beside it."""
    saved = S.ONE_LAUNCH_SAMPLING
    for b, v in SHAPES:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        seeds = torch.arange(b, device="cuda", dtype=torch.int64)
        line = [f"softmax {time_in_graph(lambda: S.temperature_softmax(logits, temps, out=logits)):.2f}"]
        out_rows.append({"kind": "softmax", "B": b, "V": v, "us": float(line[0].split()[1])})
        for one in (True, False):
            S.ONE_LAUNCH_SAMPLING = one
            us = time_in_graph(lambda: S.temperature_sample(logits, temps, seeds))
            out_rows.append({"kind": f"column_race_{'one' if one else 'two'}_launch", "B": b, "V": v, "us": us})
            line.append(f"column race, {'1' if one else '2'} launch(es) {us:.2f}")
        S.ONE_LAUNCH_SAMPLING = saved
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)


if __name__ == "__main__":
    out = sys.argv[1]
    which = sys.argv[2:] or ["cluster", "softmax", "sample"]
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
