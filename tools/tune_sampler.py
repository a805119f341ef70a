"""Sweep the sampler kernels' geometry knobs on a GPU; prints the best setting per shape.

Run on the device machine (see ci/gpu_run.sh for the PYTHONPATH set-up):
    python3 tools/tune_sampler.py OUT_DIR
Writes OUT_DIR/tune_sampler.json. The chosen defaults live in hotfuse.kernels.sampling.CONFIGS.
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
    for waves, early, (block, warps) in itertools.product((2, 4, 8), (False, True), ((1024, 4), (2048, 8), (4096, 8))):
        yield {"waves": waves, "early_launch": early, "block": block, "warps": warps}


def sample_configs():
    for waves, (block, warps), max_chunk in itertools.product((2, 4, 8), ((1024, 4), (2048, 8)), (1024, 2048, 4096)):
        yield {"waves": waves, "block": block, "warps": warps, "early_launch": False, "max_chunk": max_chunk}


def resident_configs():
    for chunk, warps, per_sm in itertools.product((4096, 8192, 16384), (4, 8, 16), (1, 2, 4)):
        yield {"resident": True, "chunk": chunk, "warps": warps, "per_sm": per_sm}


def apply(cfg):
    if cfg.get("resident"):
        S.RESIDENT.update(enabled=True, shapes=((None, cfg["chunk"], cfg["warps"]),), per_sm=cfg["per_sm"],
                          min_elements=0)
        return
    S.RESIDENT["enabled"] = False
    config = S.Config(cfg["block"], cfg["warps"], cfg["waves"], cfg["early_launch"])
    S.SAMPLE_MAX_CHUNK = cfg.get("max_chunk", S.SAMPLE_MAX_CHUNK)
    S.CONFIGS = {**S.CONFIGS, "softmax": ((None, config),), "sample": ((None, config),),
                 "sample_two_level": ((None, config),)}


def make_softmax(cfg, logits, temps, seeds):
    def fn():
        apply(cfg)
        S.temperature_softmax(logits, temps, out=logits)
    return fn


def make_sample(cfg, logits, temps, seeds):
    def fn():
        apply(cfg)
        S.temperature_sample(logits, temps, seeds)
    return fn


def launches(out_rows):
    """The one-level race in one launch against two, and a grid for the two-level race (tile / warps, waves,
    largest chunk), with softmax at the defaults beside it."""
    saved = (dict(S.CONFIGS), S.SAMPLE_TWO_LEVEL_FROM, S.ONE_LAUNCH_SAMPLING, S.SAMPLE_MAX_CHUNK)
    grid = [(S.Config(block, warps, waves, early), max_chunk) for (block, warps), waves, max_chunk, early in
            itertools.product(((1024, 4), (2048, 4), (2048, 8)), (8, 16, 32), (1024, 2048, 4096), (False, True))]
    for b, v in SHAPES:
        logits = torch.randn(b, v, device="cuda") * 4
        temps = torch.rand(b, 1, device="cuda") + 0.5
        seeds = torch.arange(b, device="cuda", dtype=torch.int64)
        line = []

        def timed(name, fn, **extra):
            try:
                us = time_in_graph(fn)
            except Exception as exc:
                print(f"  B={b} V={v} {name}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                torch.cuda.synchronize()
                return float("nan")
            out_rows.append({"kind": name, "B": b, "V": v, "us": us, **extra})
            return us

        line.append(f"softmax {timed('softmax', lambda: S.temperature_softmax(logits, temps, out=logits)):.2f}")
        S.SAMPLE_TWO_LEVEL_FROM = 1 << 62
        for one in (True, False):
            S.ONE_LAUNCH_SAMPLING = one
            us = timed(f"one_level_{'one' if one else 'two'}_launch", lambda: S.temperature_sample(logits, temps, seeds))
            line.append(f"one-level {'1' if one else '2'} launch {us:.2f}")
        S.ONE_LAUNCH_SAMPLING = saved[2]
        S.SAMPLE_TWO_LEVEL_FROM = 0
        us = timed("two_level_default", lambda: S.temperature_sample(logits, temps, seeds))
        line.append(f"two-level default {us:.2f}")
        best = None
        for cfg, max_chunk in grid:
            S.CONFIGS = {**saved[0], "sample_two_level": ((None, cfg),)}
            S.SAMPLE_MAX_CHUNK = max_chunk
            us = timed("two_level_grid", lambda: S.temperature_sample(logits, temps, seeds),
                       block=cfg.block, warps=cfg.warps, waves=cfg.waves, max_chunk=max_chunk,
                       early_launch=cfg.early_launch)
            if best is None or us < best[0]:
                best = (us, cfg, max_chunk)
        S.CONFIGS, S.SAMPLE_TWO_LEVEL_FROM, S.ONE_LAUNCH_SAMPLING, S.SAMPLE_MAX_CHUNK = \
            dict(saved[0]), saved[1], saved[2], saved[3]
        line.append(f"best two-level {best[0]:.2f} ({best[1].block}/{best[1].warps}/{best[1].waves}/{best[2]}"
                    f"{'/early' if best[1].early_launch else ''})")
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
