"""Sweep the sampler kernels' geometry knobs on a GPU; prints the best setting per shape.

Run on the device machine (see ci/gpu_run.sh for the PYTHONPATH set-up):
    python3 tools/tune_sampler.py OUT_DIR
Writes OUT_DIR/tune_sampler.json. The chosen defaults live in hotfuse.kernels.sampling (SOFTMAX_CONFIGS,
NORMALIZE_BLOCK_MAX, RESIDENT, SAMPLE_MAX_TILES_PER_PROGRAM).
"""

import itertools
import json
import sys

import torch

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
        yield {"waves": waves, "early_launch": True, "block": block, "warps": warps, "normalize_block_max": normalize}


def sample_configs():
    """Column race: tiles per program (the column layout itself is fixed: it decides the tokens)."""
    for tiles in (1, 2, 3, 4, 6, 8):
        yield {"tiles_per_program": tiles}


def resident_configs():
    for chunk, warps, per_sm in itertools.product((4096, 8192, 16384), (4, 8, 16), (1, 2, 4)):
        yield {"resident": True, "chunk": chunk, "warps": warps, "per_sm": per_sm}


def apply(cfg):
    if cfg.get("resident"):
        S.RESIDENT.update(enabled=True, chunk=cfg["chunk"], warps=cfg["warps"], per_sm=cfg["per_sm"], min_elements=0)
        return
    S.RESIDENT["enabled"] = False
    config = S.Config(cfg["block"], cfg["warps"], cfg["waves"], cfg["early_launch"])
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
    which = sys.argv[2:] or ["resident", "softmax", "sample"]
    rows = []
    if "launches" in which:
        launches(rows)
    if "resident" in which:
        rows += sweep("resident", list(resident_configs()), make_softmax)
    if "softmax" in which:
        rows += sweep("softmax", list(softmax_configs()), make_softmax)
    if "sample" in which:
        rows += sweep("sample", list(sample_configs()), make_sample)
    with open(f"{out}/tune_sampler.json", "w") as fh:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh)
