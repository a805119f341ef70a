"""Per-launch GPU times of filtered sampling (CUDA events around each launch of the split search, the race and the
one-program kernel) and, after each search launch, how many rows are in each status (search.STATUS: count, copy,
done, skip, exact_kernel). For the device machine, before the bench: it says which launch costs what and whether
rows reach the one-program kernel.

    HOTFUSE_GPU_SCRIPT=tools/profile_filtered.py bash ci/gpu_run.sh OUT

B in {1, 16, 256}, V = 128256, the bench's logits (randn x 4, T in [0.3, 1.3)), Qwen3's and Llama's parameters,
vLLM's rule; the third of three calls is printed. Host timing is not meaningful here (events only).
"""

from __future__ import annotations

import sys

import torch

from hotfuse.kernels.sampling import filtered, race, run_filtered_sample, search
from hotfuse.kernels.sampling.filters import RULES


class Timed:
    """Stands in for a Triton kernel: `kernel[grid](...)` launches it between two CUDA events and records them,
    with a copy of the rows' statuses afterwards when the launch gets the state (argument `state_arg`)."""

    def __init__(self, kernel, name, records, state_arg=None):
        self.kernel, self.name, self.records, self.state_arg = kernel, name, records, state_arg

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self.kernel[grid](*args, **kwargs)
            end.record()
            name = self.name + (f" first={kwargs['FIRST']} last={kwargs['LAST']}" if "FIRST" in kwargs else "")
            status = None if self.state_arg is None else args[self.state_arg][:, search.COLUMN["status"]].clone()
            self.records.append((name, start, end, status))
        return launch


def main() -> int:
    records = []
    search._search_top_kernel = Timed(search._search_top_kernel, "top", records, 6)
    search._search_pass_kernel = Timed(search._search_pass_kernel, "pass", records, 4)
    filtered._filtered_sample_kernel = Timed(filtered._filtered_sample_kernel, "one-program", records)
    race._sample_column_race_kernel = Timed(race._sample_column_race_kernel, "race", records)
    device = torch.device("cuda")
    vocab = 128256
    for rows in (1, 16, 256):
        for top_k, top_p in ((20, 0.95), (-1, 0.9)):
            g = torch.Generator(device=device).manual_seed(rows * 31 + vocab)
            logits = torch.randn(rows, vocab, device=device, generator=g) * 4
            temperatures = torch.rand(rows, device=device, generator=g) + 0.3
            k = torch.full((rows,), vocab if top_k < 0 else top_k, dtype=torch.int32, device=device)
            p = torch.full((rows,), top_p, device=device)
            q = torch.zeros(rows, device=device)
            seeds = torch.arange(rows, device=device)
            for _ in range(3):
                records.clear()
                run_filtered_sample(logits, temperatures, k, p, q, seeds, RULES["vllm"])
                torch.cuda.synchronize()
            print(f"B={rows} V={vocab} top_k={top_k} top_p={top_p}")
            for name, start, end, status in records:
                counts = "" if status is None else f"  statuses {torch.bincount(status.int(), minlength=5).tolist()}"
                print(f"  {name:28s} {start.elapsed_time(end) * 1000:8.1f} us{counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
