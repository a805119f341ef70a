"""Filtered sampling's time per call in a CUDA graph under several split-search tunings, side by side on one GPU, and
whether each tuning draws the same tokens as the first (a tuning only changes how the work is split):

    python3 tools/filtered_tunings.py OUT [--rows 256 64 16 4] [--vocab 128256]

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
from hotfuse.kernels.sampling import run_filtered_sample
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

TUNINGS = {
    "default": DEFAULT_TUNING,
    "loads ahead": replace(DEFAULT_TUNING, search_loads_ahead=True),
    "loads ahead, 1 block a step": replace(DEFAULT_TUNING, search_loads_ahead=True, search_step_blocks=1),
    "loads ahead, 4 warps a pass, 4 a multiprocessor": replace(DEFAULT_TUNING, search_loads_ahead=True,
                                                               search_pass_warps=4,
                                                               search_programs_per_multiprocessor=4),
    "copy in the race": replace(DEFAULT_TUNING, search_copy_in_race=True),
    "copy in the race, loads ahead": replace(DEFAULT_TUNING, search_copy_in_race=True, search_loads_ahead=True),
}
PARAMETERS = [BENCH_PARAMETERS[i] for i in (0, 1, 3)]  # the bench's: Qwen3's, Llama's, min-p alone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 64, 16, 4])
    parser.add_argument("--vocab", type=int, default=128256)
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
            for name, tuning in TUNINGS.items():
                def call(tuning=tuning):
                    return run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"], tuning=tuning)
                tokens = call()
                first = tokens if first is None else first
                line[name] = round(time_in_graph(call), 1)
                if not torch.equal(tokens, first):
                    line[f"{name} tokens differ"] = int((tokens != first).sum())
            lines.append(line)
            print(json.dumps(line), flush=True)
            with open(os.path.join(args.out, "filtered_tunings.json"), "w") as f:
                json.dump(lines, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
