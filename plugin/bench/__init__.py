"""`hotfuse bench`: the benchmark harness every fusion uses.

On a CUDA GPU, for every case of the selected fusions, each variant (`hotfuse`, `hotfuse_<what>`,
`eager`, `compile`, `sglang`, `vllm`, ... whatever the fusion's case builder provides) is timed in
this one process as replays of a CUDA graph holding CALLS calls (the decode setting), median of
REPLAYS replays, in µs per call; each eager call's host wall time is measured too. The roofline is the
case's byte count over the device-to-device copy bandwidth measured in the same run (bytes read +
written). Results go to `bench.json` (device, versions, bandwidth, `rows`), `bench.md` and, when
matplotlib is installed, `bench.png`.

On a CPU the timings would mean nothing: the harness says so and runs only the correctness pass
(every variant's output against the fusion's reference).

Row conventions: `fusion` is the registry name; `variant` as above; `shape` a dict
({B, V} sampler, {B, V, top_k, top_p, min_p, greedy} the sampler's filtered sampling, {T, E, K} router, {T} top-k
post-process and QK-norm, {B} spec gather). bench.json is rewritten after every case (`complete` turns true at
the end), so a run cut short by a time limit keeps what it measured; bench.md has one table per fusion and shape
kind.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

CALLS = 20
REPLAYS = 30
# fusion -> its case builders: "module" (its cases()) or "module:function", one or a tuple of them
BENCH_MODULES = {
    "sampler": ("hotfuse.bench.sampler", "hotfuse.bench.filtered_sampling"),
    "gemma4_router": "hotfuse.bench.gemma4_router",
    "topk_postprocess": "hotfuse.bench.moe_postprocess:topk_postprocess_cases",
    "spec_gather": "hotfuse.bench.moe_postprocess:spec_gather_cases",
    "qk_norm_fp8": "hotfuse.bench.qk_norm_fp8",
}


@dataclass
class Variant:
    name: str
    run: Callable[[], Any]            # one call on inputs already bound
    roofline_bytes: int | None = None  # when it differs from the case's (e.g. a sampler that never writes probs)
    graph: bool = True                 # False: host wall time only (a call that launches nothing)


@dataclass
class Case:
    fusion: str
    shape: dict
    roofline_bytes: int
    variants: list[Variant]
    check: Callable[[], float] | None = None  # max error of the hotfuse variant against the reference
    tolerance: float = 0.0
    notes: dict = field(default_factory=dict)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large device-to-device copy, counting bytes read plus bytes written."""
    n = 1 << 28  # 1 GiB of fp32
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return 2 * src.numel() * src.element_size() / statistics.median(times)


def graph_of(fn: Callable[[], Any], calls: int = CALLS) -> torch.cuda.CUDAGraph:
    """A CUDA graph holding `calls` calls of fn (after three warm-up calls on a side stream), replayed three times."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    for _ in range(3):
        graph.replay()
    return graph


def time_in_graph(fn: Callable[[], Any]) -> float:
    """µs per call: median over REPLAYS replays of a CUDA graph holding CALLS calls."""
    graph = graph_of(fn)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(REPLAYS):
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) * 1e3 / CALLS)
    del graph
    return statistics.median(samples)


def time_host(fn: Callable[[], Any], calls: int = 200) -> float:
    """µs of wall time per eager call (launch overhead included), synchronising once at the end."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e6 / calls


def load_cases(fusions: list[str], device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    cases = []
    for name in fusions:
        builders = BENCH_MODULES[name]
        for builder in (builders,) if isinstance(builders, str) else builders:
            module_name, _, function = builder.partition(":")
            make = getattr(importlib.import_module(module_name), function or "cases")
            cases.extend(make(device, upstream, quick))
    return cases


def environment(device: torch.device) -> dict:
    from hotfuse.kernels import triton

    triton_version = triton.__version__ if triton is not None else None
    env = {"torch": torch.__version__, "triton": triton_version, "cuda": torch.version.cuda,
           "python": sys.version.split()[0]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device=props.name, multiprocessors=props.multi_processor_count)
    else:
        env["device"] = "cpu"
    return env


def run(fusions: list[str], out_dir: str, upstream: dict[str, str], quick: bool = False,
        skip_variants: set[str] = frozenset()) -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    env = environment(device)
    log(f"hotfuse bench on {env['device']} (torch {env['torch']}, triton {env['triton']})")
    if not cuda:
        log("No CUDA GPU: timings on a CPU are not meaningful. Running the correctness pass only.")
    bandwidth = copy_bandwidth(device) if cuda else None
    if bandwidth:
        log(f"device-to-device copy: {bandwidth / 1e12:.2f} TB/s (bytes read + written)")
    cases = load_cases(fusions, device, upstream, quick or not cuda)
    rows, checks = [], []
    doc = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **env,
           "copy_bandwidth_GBps": bandwidth / 1e9 if bandwidth else None,
           "calls_per_graph": CALLS, "replays": REPLAYS, "complete": False, "rows": rows, "checks": checks}
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "bench.json")
    for i, case in enumerate(cases, 1):
        label = f"[{i}/{len(cases)}] {case.fusion} {case.shape}"
        if case.check is not None:
            err = case.check()
            ok = err <= case.tolerance
            checks.append({"fusion": case.fusion, "shape": case.shape, "max_error": err,
                           "tolerance": case.tolerance, "ok": ok})
            log(f"{label}: check max error {err:.3g} (tolerance {case.tolerance:g}) {'ok' if ok else 'FAILED'}")
        if not cuda:
            continue
        for variant in (v for v in case.variants if v.name not in skip_variants):
            nbytes = variant.roofline_bytes or case.roofline_bytes
            roofline_us = nbytes / bandwidth * 1e6
            row = {"fusion": case.fusion, "variant": variant.name, "shape": case.shape,
                   "roofline_us": roofline_us, "bytes": nbytes,
                   "case_roofline_us": case.roofline_bytes / bandwidth * 1e6}
            try:
                row["host_us"] = time_host(variant.run)
                if not variant.graph:
                    log(f"{label} {variant.name:>16}: host {row['host_us']:8.2f} us per eager call")
                    rows.append(row)
                    continue
                row["us"] = time_in_graph(variant.run)
                row["gbps"] = nbytes / (row["us"] * 1e-6) / 1e9
                row["x_roofline"] = row["us"] / roofline_us if roofline_us else math.inf
                log(f"{label} {variant.name:>16}: {row['us']:8.2f} us  ({row['x_roofline']:.2f}x roofline)")
            except Exception as exc:  # a variant that cannot be captured or fails is reported, not fatal
                row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                log(f"{label} {variant.name:>16}: ERROR {row['error']}")
                torch.cuda.synchronize()
            rows.append(row)
        _write_json(doc, json_path)  # after every case: a run cut short keeps what it measured
    doc["complete"] = True
    _write_json(doc, json_path)
    with open(os.path.join(out_dir, "bench.md"), "w") as fh:
        fh.write(markdown(doc))
    if rows:
        plot(doc, os.path.join(out_dir, "bench.png"))
    print(markdown(doc))
    return doc


def _write_json(doc: dict, path: str) -> None:
    with open(path + ".tmp", "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(path + ".tmp", path)


def _shape_text(shape: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in shape.items())


def markdown(doc: dict) -> str:
    lines = [f"Device: {doc['device']}; torch {doc['torch']}; triton {doc['triton']}; CUDA {doc['cuda']}; "
             f"copy bandwidth {doc['copy_bandwidth_GBps'] or 0:.0f} GB/s; {doc['created']}.", ""]
    if doc["checks"]:
        failed = [c for c in doc["checks"] if not c["ok"]]
        lines.append(f"Correctness: {len(doc['checks']) - len(failed)}/{len(doc['checks'])} checks within tolerance.")
        lines.append("")
    # one table per fusion and shape kind (the sampler's temperature rows {B, V} and filtered rows apart)
    for fusion, keys in dict.fromkeys((r["fusion"], tuple(r["shape"])) for r in doc["rows"]):
        rows = [r for r in doc["rows"] if r["fusion"] == fusion and tuple(r["shape"]) == keys]
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        shapes = list(dict.fromkeys(_shape_text(r["shape"]) for r in rows))
        lines.append(f"### {fusion} (µs per call in a CUDA graph, × roofline in brackets; "
                     f"'host': µs of wall time per eager call)")
        lines.append("")
        lines.append("| shape | roofline µs | " + " | ".join(variants) + " |")
        lines.append("|---|---|" + "---|" * len(variants))
        for shape in shapes:
            cells = []
            for v in variants:
                r = next((r for r in rows if r["variant"] == v and _shape_text(r["shape"]) == shape), None)
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("error")
                elif "us" not in r:
                    cells.append(f"host {r['host_us']:.2f}")
                else:
                    cells.append(f"{r['us']:.2f} ({r['x_roofline']:.1f}×)")
            roof = next(r["case_roofline_us"] for r in rows if _shape_text(r["shape"]) == shape)
            lines.append(f"| {shape} | {roof:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(doc: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return
    fusions = list(dict.fromkeys(r["fusion"] for r in doc["rows"]))
    fig, axes = plt.subplots(len(fusions), 1, figsize=(10, 4 * len(fusions)), squeeze=False)
    for ax, fusion in zip(axes[:, 0], fusions):
        rows = [r for r in doc["rows"] if r["fusion"] == fusion and "us" in r]
        shapes = list(dict.fromkeys(_shape_text(r["shape"]) for r in rows))
        for variant in dict.fromkeys(r["variant"] for r in rows):
            ys = [next((r["x_roofline"] for r in rows if r["variant"] == variant and _shape_text(r["shape"]) == s),
                       float("nan")) for s in shapes]
            ax.plot(range(len(shapes)), ys, marker="o", label=variant)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shapes)), shapes, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("time / roofline")
        ax.set_title(f"{fusion} on {doc['device']}")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def load_upstream_module(path: str, name: str):
    """Load an engine kernel module from a source file (copied out of the engine's wheel)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
