"""Filtered sampling's time per call in a CUDA graph under several tunings of the split search and of settle.py's
launch (TUNINGS), side by side on one GPU, and whether each draws the same tokens as the first (a tuning only
changes how the work is split):

    python3 tools/filtered_tunings.py OUT [--rows 256 64 16 4] [--vocab 128256] [--tunings default "..."]

(with hotfuse importable, as tools/bench_filtered.py). The bench's inputs (`bench.filtered_sampling.batch`), vLLM's
rule, Qwen3's and Llama's parameters and min-p alone. Writes OUT/filtered_tunings.json after every shape; prints a JSON
line per shape (µs per call, and "<tuning> tokens differ": how many rows drew another token, where any did).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

import torch

from hotfuse.bench import time_in_graph
from hotfuse.bench.filtered_sampling import PARAMETERS as BENCH_PARAMETERS, batch
from hotfuse.kernels.sampling import run_filtered_sample, settle
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

# name: (tuning, settle.py's module constants for that run)
TUNINGS = {
    "default": (DEFAULT_TUNING, {}),
    "1 block a step": (replace(DEFAULT_TUNING, search_step_blocks=1), {}),
    "4 programs a multiprocessor": (replace(DEFAULT_TUNING, search_programs_per_multiprocessor=4), {}),
    "8 programs a multiprocessor": (replace(DEFAULT_TUNING, search_programs_per_multiprocessor=8), {}),
    "candidates 128": (replace(DEFAULT_TUNING, search_candidates=128), {}),
    "later passes as for 16 rows": (replace(DEFAULT_TUNING, search_later_pass_rows=16), {}),
    "later passes as for 32 rows": (replace(DEFAULT_TUNING, search_later_pass_rows=32), {}),
    "64 bins (the default before 2026-12-08)": (replace(DEFAULT_TUNING, search_bins=64), {}),
    "128 bins, the first 1/8 of depth": (replace(DEFAULT_TUNING, search_first_bins_per_depth=8), {}),
    "32 bins, the first 1/2 of depth": (replace(DEFAULT_TUNING, search_bins=32, search_first_bins_per_depth=2), {}),
    "settle: marks 1024 words a step": (DEFAULT_TUNING, {"MARK_WORDS": 1024}),
    "settle: 4 warps": (DEFAULT_TUNING, {"SETTLE_WARPS": 4}),
}
PARAMETERS = [BENCH_PARAMETERS[i] for i in (0, 1, 3)]  # the bench's: Qwen3's, Llama's, min-p alone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 64, 16, 4])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--tunings", nargs="+", default=list(TUNINGS), choices=list(TUNINGS), metavar="NAME",
                        help=f"which of {list(TUNINGS)} (the first is the one the others' tokens are compared with)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda")
    lines = []
    for rows in args.rows:
        seeds = torch.arange(rows, device=device)
        for params in PARAMETERS:
            top_k, top_p, min_p, _greedy_every = params
            logits, t, k, p, q = batch(rows, args.vocab, params, device)  # the bench's inputs
            line = {"device": torch.cuda.get_device_name(device), "B": rows, "V": args.vocab, "top_k": top_k,
                    "top_p": top_p, "min_p": min_p}
            first = None
            for name in args.tunings:
                tuning, constants = TUNINGS[name]
                saved = {c: getattr(settle, c) for c in constants}

                def call(tuning=tuning):
                    return run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"], tuning=tuning)
                try:
                    for c, value in constants.items():
                        setattr(settle, c, value)
                    tokens = call()
                    line[name] = round(time_in_graph(call), 1)
                finally:
                    for c, value in saved.items():
                        setattr(settle, c, value)
                first = tokens if first is None else first
                if not torch.equal(tokens, first):
                    line[f"{name} tokens differ"] = int((tokens != first).sum())
            lines.append(line)
            print(json.dumps(line), flush=True)
            with open(os.path.join(args.out, "filtered_tunings.json"), "w") as f:
                json.dump(lines, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
