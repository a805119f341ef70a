"""Filtered sampling's time per call in a CUDA graph under several split-search tunings, side by side on one GPU, and
whether each tuning draws the same tokens as the first (a tuning only changes how the work is split):

    python3 tools/filtered_tunings.py OUT [--rows 256 64 16 4] [--vocab 128256]

(with hotfuse importable, as tools/bench_filtered.py). The bench's inputs (randn x 4, T in [0.3, 1.3)), vLLM's rule,
Qwen3's and Llama's parameters and min-p alone. Writes OUT/filtered_tunings.json after every shape; prints a JSON
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
from hotfuse.kernels.sampling import run_filtered_sample
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

TUNINGS = {
    "passes on the race's chunks, 1 block a step": replace(DEFAULT_TUNING, search_programs_per_multiprocessor=None,
                                                           search_step_blocks=1),
    "1 block a step": replace(DEFAULT_TUNING, search_step_blocks=1),
    "default": DEFAULT_TUNING,
    "4 warps a pass, 4 a multiprocessor": replace(DEFAULT_TUNING, search_pass_warps=4,
                                                  search_programs_per_multiprocessor=4),
}
PARAMETERS = ((20, 0.95, 0.0), (-1, 0.9, 0.0), (-1, 1.0, 0.05))  # Qwen3's, Llama's, min-p alone


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
        g = torch.Generator(device=device).manual_seed(rows)
        logits = torch.randn(rows, args.vocab, device=device, generator=g) * 4
        t = torch.rand(rows, device=device, generator=g) + 0.3
        seeds = torch.arange(rows, device=device)
        for top_k, top_p, min_p in PARAMETERS:
            k = torch.full((rows,), args.vocab if top_k < 0 else top_k, dtype=torch.int32, device=device)
            p = torch.full((rows,), top_p, device=device)
            q = torch.full((rows,), min_p, device=device)
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
