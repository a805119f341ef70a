"""The filtered-sampling rows of `hotfuse bench --fusion sampler` alone, for some of its shapes, and how each compares
with the engines' paths timed beside it: a device call of 10 minutes cannot hold all 75 shapes together with the GPU
suite, so the table is taken in parts (the rows are the bench's own: same cases, same timing).

    HOTFUSE_GPU_SCRIPT=tools/bench_filtered.py bash ci/gpu_run.sh OUT --vocab 128256 --upstream vllm_sampling=.upstream

Writes OUT/bench.json (the bench's document) and prints, per shape, hotfuse's time, the fastest engine path's and
their ratio; exits 0 (timings are not a test).
"""

from __future__ import annotations

import argparse
import os
import sys

from hotfuse import bench
from hotfuse.bench import filtered_sampling

ENGINE_VARIANTS = ("flashinfer", "sglang", "vllm", "vllm_torch")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--vocab", type=int, action="append", help="only these vocabularies (repeatable)")
    parser.add_argument("--rows", type=int, action="append", help="only these batch sizes (repeatable)")
    parser.add_argument("--skip-variant", action="append", default=["compile"])
    parser.add_argument("--upstream", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    filtered_sampling.FULL = [(b, v) for b, v in filtered_sampling.FULL
                              if (not args.vocab or v in args.vocab) and (not args.rows or b in args.rows)]
    bench.BENCH_MODULES["sampler"] = ("hotfuse.bench.filtered_sampling",)
    os.makedirs(args.out, exist_ok=True)
    doc = bench.run(["sampler"], args.out, dict(item.split("=", 1) for item in args.upstream),
                    skip_variants=set(args.skip_variant))
    by_shape: dict[str, dict[str, float]] = {}
    for row in doc["rows"]:
        if "us" in row:
            by_shape.setdefault(bench._shape_text(row["shape"]), {})[row["variant"]] = row["us"]
    wins = 0
    for shape, times in by_shape.items():
        engines = {name: us for name, us in times.items() if name in ENGINE_VARIANTS}
        ours = times.get("hotfuse_filtered")
        if not engines or ours is None:
            continue
        best = min(engines, key=engines.get)
        wins += ours < engines[best]
        sglang_rule = times.get("hotfuse_filtered_sglang", float("nan"))
        print(f"{shape}: hotfuse_filtered {ours:8.1f} us, sglang-rule {sglang_rule:8.1f} us; fastest engine path "
              f"{best} {engines[best]:8.1f} us ({engines[best] / ours:5.2f}x)")
    print(f"hotfuse_filtered faster than every engine path at {wins} of {len(by_shape)} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
