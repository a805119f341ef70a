"""Benchmark cases for `topk_postprocess` and `spec_gather`.

topk_postprocess: int32 ids [T, 8], 256 experts, a static logical->physical table and a device-side
non-padded count. Variants: `hotfuse`, `eager` (gather through the table, then mask), `compile`
(torch.compile(dynamic=True) of that, as SGLang's helper is). The `*_noop` rows call each with neither a
table nor padding: host time only (nothing reaches the GPU from hotfuse; the compiled helper still runs
its guards). Roofline bytes: ids read and written once, the table read once.

spec_gather: the buffers of SGLang's FutureMap for an EAGLE draft with topk 4 and hidden 4096 (bf16), 1024
slots, B rows gathered from topk_p fp32 [4], topk_index int64 [4], bonus tokens int64 [] and hidden_states
bf16 [4096]. Variants: `hotfuse` (gather_rows, one launch), `eager` (four index ops, SGLang 0.5.11-0.5.12),
`compile`, and `sglang` (SGLang 0.5.13+'s own one-launch gather_spec_extras, from the source file given with
--upstream sglang_spec_gather=PATH).
"""

from __future__ import annotations

import torch

from hotfuse.bench import Case, Variant, load_upstream_module
from hotfuse.kernels.moe_postprocess import gather_rows, gather_rows_reference, topk_postprocess, \
    topk_postprocess_reference

EXPERTS, TOPK, SLOTS, HIDDEN = 256, 8, 1024, 4096


def eager_postprocess(ids, table, n):
    """The engines' unfused path: gather through the table (a new tensor), then mask it in place."""
    if table is not None:
        ids = table[ids.long()].to(ids.dtype)
    if n is not None:
        rows = torch.arange(ids.shape[0], device=ids.device)
        ids[rows >= n] = -1
    return ids


def topk_cases(device, quick):
    compiled = torch.compile(eager_postprocess, dynamic=True)
    out = []
    for t in ((1, 37) if quick else (1, 64, 512, 4096)):
        g = torch.Generator(device=device).manual_seed(t)
        ids = torch.randint(0, EXPERTS, (t, TOPK), device=device, generator=g, dtype=torch.int32)
        table = torch.randperm(EXPERTS, device=device, generator=g).to(torch.int32)
        n = torch.tensor(max(t - 3, 0), device=device)
        variants = [
            Variant("hotfuse", lambda ids=ids, table=table, n=n: topk_postprocess(ids, table, n)),
            Variant("eager", lambda ids=ids, table=table, n=n: eager_postprocess(ids, table, n)),
            Variant("compile", lambda ids=ids, table=table, n=n: compiled(ids, table, n)),
            Variant("hotfuse_noop", lambda ids=ids: topk_postprocess(ids, None, None), graph=False),
            Variant("compile_noop", lambda ids=ids: compiled(ids, None, None), graph=False),
        ]

        def check(ids=ids, table=table, n=n):
            got = topk_postprocess(ids.clone(), table, n)
            return 0.0 if torch.equal(got, topk_postprocess_reference(ids.clone(), table, n)) else float("inf")

        out.append(Case("topk_postprocess", {"T": t}, roofline_bytes=2 * ids.numel() * 4 + EXPERTS * 4,
                        variants=variants, check=check, tolerance=0.0))
    return out


def gather_cases(device, upstream, quick):
    g = torch.Generator(device=device).manual_seed(1)
    hidden_dtype = torch.bfloat16 if device.type == "cuda" else torch.float16
    sglang = None
    if "sglang_spec_gather" in upstream:
        sglang = load_upstream_module(upstream["sglang_spec_gather"], "upstream_sglang_gather_spec_extras")
    buffers = [torch.rand(SLOTS, 4, device=device, generator=g),
               torch.randint(0, 1000, (SLOTS, 4), device=device, generator=g),
               torch.randint(0, 1000, (SLOTS,), device=device, generator=g),
               torch.randn(SLOTS, HIDDEN if not quick else 64, device=device, generator=g).to(hidden_dtype)]
    compiled = torch.compile(lambda idx, *b: tuple(x[idx] for x in b), dynamic=False)
    out = []
    for b in ((0, 3) if quick else (1, 8, 16, 32, 64, 256)):
        idx = torch.randint(0, SLOTS, (b,), device=device, generator=g)
        variants = [
            Variant("hotfuse", lambda idx=idx: gather_rows(idx, *buffers)),
            Variant("eager", lambda idx=idx: gather_rows_reference(idx, *buffers)),
            Variant("compile", lambda idx=idx: compiled(idx, *buffers)),
        ]
        if sglang is not None:
            variants.append(Variant("sglang", lambda idx=idx: sglang.gather_spec_extras(idx, *buffers)))

        def check(idx=idx):
            got, ref = gather_rows(idx, *buffers), gather_rows_reference(idx, *buffers)
            return 0.0 if all(torch.equal(x, y) for x, y in zip(got, ref)) else float("inf")

        row_bytes = sum(x[0].numel() * x.element_size() for x in buffers)
        out.append(Case("spec_gather", {"B": b}, roofline_bytes=2 * b * row_bytes + b * 8, variants=variants,
                        check=check, tolerance=0.0))
    return out


def topk_postprocess_cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    return topk_cases(device, quick)


def spec_gather_cases(device: torch.device, upstream: dict[str, str], quick: bool) -> list[Case]:
    return gather_cases(device, upstream, quick)
