"""How each kernel is checked against its torch reference: the data behind the start-up self-check, shadow
mode and `hotfuse verify` (see hotfuse.safety). Engine-agnostic, like the kernels.

A `Check` names the fused kernel (the kernels alone: inputs already checked), the rule for which inputs it takes
(`unsupported`: the reason it cannot, or None) and its reference (same arguments, same outputs), says how to draw
random arguments shaped like real ones, how far apart two outputs are (0 = identical; `inf` = a different
discrete answer), the tolerance for the inputs' dtype, which arguments the kernel writes in place (copied
before a shadow reference runs), how to corrupt an output (the documented test fault `kernel:<fusion>`),
and the shapes `hotfuse verify` runs.

Rules (ISSUE: sampler probabilities within tolerance; router same expert set, weights within tolerance;
gathers and post-process exact):
- temperature_softmax: max |p - p_ref| over all entries, tolerance by dtype (fp32 1e-5, fp16 2e-3, bf16 1e-2).
- filtered_sample: the same, a token must be one the rule keeps (filters.kept_tokens_reference), and a greedy row's
  the first largest logit.
- temperature_sample: random by design, so not compared token for token: a token must be in range and
  have a non-zero reference probability, NaN logits counting as masked (+inf logits: outside the contract) (self-check inputs always mask token 0
  and half the vocabulary).
- gemma4_route: same expert set per token (ids sorted), then max |w - w_ref| ≤ 1e-5 (fp32 math both sides);
  padded rows (id -1, weight 0) compare like any other.
- topk_postprocess, gather_rows: bitwise equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hotfuse.kernels.fp8 import static_fp8_quant
from hotfuse.kernels.gemma4_router import gemma4_route_reference, run_gemma4_route
from hotfuse.kernels.gemma4_router import unsupported_reason as route_unsupported
from hotfuse.kernels.moe_postprocess import gather_rows_reference, gather_unsupported_reason, run_gather_rows, \
    run_topk_postprocess, topk_postprocess_reference, topk_unsupported_reason
from hotfuse.kernels.sampling import filtered_sample_reference, filtered_unsupported_reason, run_filtered_sample, \
    run_temperature_sample, run_temperature_softmax, temperature_sample_reference, temperature_softmax_reference
from hotfuse.kernels.sampling.filters import RULES, kept_tokens_reference
from hotfuse.kernels.sampling import unsupported_reason as sampler_unsupported

INF = float("inf")


@dataclass(frozen=True)
class Check:
    fusion: str
    kernel: str
    fused: Callable                                           # the kernel alone: inputs it takes
    unsupported: Callable[..., str | None]                    # (same arguments) why it cannot take them, or None
    reference: Callable
    random_like: Callable[[tuple, torch.Generator], tuple]   # arguments shaped like these, random values
    error: Callable[[object, object, tuple], float]          # (fused out, reference out, arguments)
    tolerance: Callable[[tuple], float]
    corrupt: Callable[[object], object]                       # test fault: a visibly wrong output
    verify_args: Callable[[torch.device, torch.dtype, bool], list[tuple]]  # (device, dtype, small) -> args
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)
    mutates: tuple[int, ...] = ()                             # argument positions written in place
    triton: bool = True                                       # False: plain torch (no interpreter limits)


def _rand(shape, dtype, device, g, scale=1.0):
    return (torch.randn(shape, generator=g, device="cpu") * scale).to(device=device, dtype=dtype)


# ---- sampler -------------------------------------------------------------------------------------

def _logits_like(logits: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = _rand(logits.shape, logits.dtype, logits.device, g, 4.0)
    if x.shape[1] > 1:
        x[:, 0::2] = float("-inf")  # masked vocabulary (token 0 and every other one): never to be picked
    return x


def _temps_like(temps: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return (0.3 + 1.5 * torch.rand(temps.shape, generator=g)).to(device=temps.device, dtype=temps.dtype)


def _softmax_tolerance(args) -> float:
    return {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(args[0].dtype, 1e-2)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return INF
    if a.numel() == 0:
        return 0.0
    diff = (a.float() - b.float()).abs()
    diff = torch.where(torch.isnan(a.float()) != torch.isnan(b.float()), torch.full_like(diff, INF), diff)
    return float(torch.nan_to_num(diff, nan=0.0).max())


def _softmax_verify_args(device, dtype, small):
    shapes = [(1, 1000), (7, 4099)] if small else [(1, 32000), (16, 128256), (64, 262144)]
    g = torch.Generator().manual_seed(0)
    return [(_logits_like(torch.empty(s, dtype=dtype, device=device), g),
             _temps_like(torch.empty(s[0], device=device), g)) for s in shapes]


SOFTMAX = Check(
    fusion="sampler", kernel="temperature_softmax",
    fused=lambda logits, temps: run_temperature_softmax(logits, temps),
    unsupported=lambda logits, temps: sampler_unsupported(logits, temps),
    reference=lambda logits, temps: temperature_softmax_reference(logits, temps),
    random_like=lambda args, g: (_logits_like(args[0], g), _temps_like(args[1], g)),
    error=lambda out, ref, args: _max_abs(out, ref),
    tolerance=_softmax_tolerance,
    corrupt=lambda out: out * 1.5,
    verify_args=_softmax_verify_args,
)


SOFTMAX_INPLACE = Check(
    fusion="sampler", kernel="temperature_softmax (in place)",
    fused=lambda logits, temps: run_temperature_softmax(logits, temps, out=logits),
    unsupported=lambda logits, temps: sampler_unsupported(logits, temps, out=logits),
    reference=lambda logits, temps: temperature_softmax_reference(logits, temps, out=logits),
    random_like=SOFTMAX.random_like, error=SOFTMAX.error, tolerance=_softmax_tolerance,
    corrupt=lambda out: out.mul_(1.5), verify_args=_softmax_verify_args, mutates=(0,),
)


def _sample_error(tokens: torch.Tensor, _ref, args) -> float:
    logits, temps = args[0], args[1]
    if tokens.shape != (logits.shape[0],):
        return INF
    if tokens.numel() == 0:
        return 0.0
    in_range = bool(((tokens >= 0) & (tokens < logits.shape[1])).all())
    if not in_range:
        return INF
    x = logits.float().masked_fill(torch.isnan(logits), float("-inf"))
    allowed = temperature_softmax_reference(x, temps) > 0
    return 0.0 if bool(allowed.gather(1, tokens.long().reshape(-1, 1)).all()) else INF


def _seeds_like(seeds: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 1 << 62, seeds.shape, generator=g, dtype=torch.int64).to(seeds.device)


SAMPLE = Check(
    fusion="sampler", kernel="temperature_sample",
    fused=lambda logits, temps, seeds: run_temperature_sample(logits, temps, seeds),
    unsupported=lambda logits, temps, seeds: sampler_unsupported(logits, temps, seeds=seeds),
    reference=lambda logits, temps, seeds: temperature_sample_reference(logits, temps),  # no host read of the seeds
    random_like=lambda args, g: (_logits_like(args[0], g), _temps_like(args[1], g), _seeds_like(args[2], g)),
    error=_sample_error,
    tolerance=lambda args: 0.0,
    corrupt=lambda out: torch.zeros_like(out),      # token 0: masked in every self-check input
    verify_args=lambda device, dtype, small: [
        args + (torch.arange(args[0].shape[0], dtype=torch.int64, device=device),)
        for args in _softmax_verify_args(device, dtype, small)],
)


def _filtered_error(tokens: torch.Tensor, _ref, args) -> float:
    """0 when every greedy row drew its first largest logit and every other row a token its rule keeps."""
    logits, temps, top_k, top_p, min_p, _seeds, rule = args
    if tokens.shape != (logits.shape[0],):
        return INF
    if tokens.numel() == 0:
        return 0.0
    if not bool(((tokens >= 0) & (tokens < logits.shape[1])).all()):
        return INF
    x = logits.float().masked_fill(torch.isnan(logits), float("-inf"))
    greedy = temps.reshape(-1) == 0
    kept = kept_tokens_reference(x, torch.where(greedy, 1.0, temps.reshape(-1).float()), top_k, top_p, min_p, rule)
    drawn = tokens.long().reshape(-1, 1)
    ok = torch.where(greedy, drawn.squeeze(1) == x.argmax(dim=-1), kept.gather(1, drawn).squeeze(1))
    return 0.0 if bool(ok.all()) else INF


def _filtered_like(args, g):
    """Random logits, temperatures and seeds; the call's own filters, greedy rows and rule (its structure)."""
    logits, temps, top_k, top_p, min_p, seeds, rule = args
    t = torch.where(temps.reshape(-1) == 0, 0.0, _temps_like(temps.reshape(-1).float(), g).to(temps.device))
    return (_logits_like(logits, g), t.to(temps.dtype), top_k, top_p, min_p, _seeds_like(seeds, g), rule)


def _filtered_verify_args(device, dtype, small):
    """Qwen3's defaults (k 20, p 0.95), Llama's (p 0.9), min-p alone, and a mixed batch with greedy rows, under both
    engines' rules."""
    shapes = [(4, 1000), (6, 4099)] if small else [(1, 151936), (16, 128256), (64, 262144)]
    g = torch.Generator().manual_seed(2)
    out = []
    for i, (rows, vocab) in enumerate(shapes):
        k = torch.tensor([20, -1, -1, 64, 20, 1 << 30] * rows, dtype=torch.int32)[:rows]
        p = torch.tensor([0.95, 0.9, 1.0, 0.95, 0.8, 1.0] * rows)[:rows]
        q = torch.tensor([0.0, 0.0, 0.05, 0.0, 0.0, 0.1] * rows)[:rows]
        t = _temps_like(torch.empty(rows), g)
        t[3::4] = 0.0
        args = (_logits_like(torch.empty(rows, vocab, dtype=dtype, device=device), g), t.to(device), k.to(device),
                p.to(device), q.to(device), torch.arange(rows, dtype=torch.int64, device=device),
                RULES["vllm" if i % 2 == 0 else "sglang"])
        out.append(args)
    return out


FILTERED_SAMPLE = Check(
    fusion="sampler", kernel="filtered_sample",
    fused=lambda logits, temps, k, p, q, seeds, rule: run_filtered_sample(logits, temps, k, p, q, seeds, rule),
    unsupported=lambda logits, temps, k, p, q, seeds, rule: filtered_unsupported_reason(logits, temps, k, p, q, seeds),
    reference=lambda logits, temps, k, p, q, seeds, rule: filtered_sample_reference(logits, temps, k, p, q, rule),
    random_like=_filtered_like,
    error=_filtered_error,
    tolerance=lambda args: 0.0,
    corrupt=lambda out: torch.zeros_like(out),      # token 0: masked in every self-check input
    verify_args=_filtered_verify_args,
)


# ---- gemma4 router -------------------------------------------------------------------------------

def _route_error(out, ref, args) -> float:
    (w, ids), (w_ref, ids_ref) = out, ref
    if w.shape != w_ref.shape or ids.shape != ids_ref.shape:
        return INF
    if ids.numel() == 0:
        return 0.0
    order, order_ref = ids.long().argsort(-1), ids_ref.long().argsort(-1)
    if not torch.equal(ids.long().gather(-1, order), ids_ref.long().gather(-1, order_ref)):
        return INF
    return _max_abs(w.gather(-1, order), w_ref.gather(-1, order_ref))


def _route_like(args, g):
    gating, scale, topk = args[:3]
    padding = args[3] if len(args) > 3 else None  # the call's own padding mask: which rows it marks is structure
    return (_rand(gating.shape, gating.dtype, gating.device, g, 3.0),
            (0.5 + torch.rand(scale.shape, generator=g)).to(device=scale.device, dtype=scale.dtype), topk, padding)


def _route_verify_args(device, dtype, small):
    shapes = [(7, 64, 4), (64, 128, 8)] if small else [(1, 128, 8), (4096, 128, 8), (64, 256, 8), (16384, 256, 8)]
    g = torch.Generator().manual_seed(1)
    out = [_route_like((torch.empty(t, e, dtype=dtype, device=device), torch.empty(e, device=device), k), g)
           for t, e, k in shapes]
    t, e, k = shapes[-1]
    padding = torch.arange(t, device=device) >= t - t // 4  # the last quarter of the rows is CUDA-graph padding
    return out + [_route_like((torch.empty(t, e, dtype=dtype, device=device), torch.empty(e, device=device), k,
                               padding), g)]


ROUTE = Check(
    fusion="gemma4_router", kernel="gemma4_route",
    fused=run_gemma4_route, reference=gemma4_route_reference,
    unsupported=lambda gating, scale, topk, is_padding=None: route_unsupported(gating, scale, is_padding, topk),
    random_like=_route_like, error=_route_error, tolerance=lambda args: 1e-5,
    corrupt=lambda out: (out[0] * 1.5, out[1]),
    verify_args=_route_verify_args,
)


# ---- MoE top-k post-process and the speculative gather -------------------------------------------

def _exact(out, ref, args) -> float:
    outs = out if isinstance(out, tuple) else (out,)
    refs = ref if isinstance(ref, tuple) else (ref,)
    if len(outs) != len(refs):
        return INF
    for a, b in zip(outs, refs):
        if (a is None) != (b is None) or (a is not None and (a.shape != b.shape or a.dtype != b.dtype
                                                            or not torch.equal(a, b))):
            return INF
    return 0.0


def _topk_like(args, g):
    ids, table, n = args[0], args[1], args[2]
    experts = table.numel() if table is not None else 64
    new_ids = torch.randint(0, experts, ids.shape, generator=g).to(device=ids.device, dtype=ids.dtype)
    new_table = None if table is None else torch.randperm(experts, generator=g).to(table.device, table.dtype)
    new_n = None if n is None else torch.randint(0, ids.shape[0] + 1, n.shape, generator=g).to(n.device, n.dtype)
    return (new_ids, new_table, new_n)


def _topk_verify_args(device, dtype, small):
    g = torch.Generator().manual_seed(2)
    out = []
    for t in ((0, 1, 37, 512) if small else (1, 64, 512, 4096)):
        for id_dtype in (torch.int32, torch.int64):
            ids = torch.empty(t, 8, dtype=id_dtype, device=device)
            out.append(_topk_like((ids, torch.empty(256, dtype=torch.int32, device=device),
                                   torch.empty((), dtype=torch.int64, device=device)), g))
    return out


TOPK = Check(
    fusion="topk_postprocess", kernel="topk_postprocess",
    fused=lambda ids, table, n: run_topk_postprocess(ids, table, n, out=torch.empty_like(ids)),
    unsupported=lambda ids, table, n: topk_unsupported_reason(ids, table, n, out=ids),
    reference=lambda ids, table, n: topk_postprocess_reference(ids, table, n, out=torch.empty_like(ids)),
    random_like=_topk_like, error=_exact, tolerance=lambda args: 0.0,
    corrupt=lambda out: out + 1,
    verify_args=_topk_verify_args, dtypes=(torch.int32,),
)


def _gather_like(args, g):
    indices, buffers = args[0], args[1:]
    slots = next((b.shape[0] for b in buffers if b is not None), 1)
    new = [None if b is None else
           (torch.randint(-1000, 1000, b.shape, generator=g).to(b.device, b.dtype) if not b.is_floating_point()
            else _rand(b.shape, b.dtype, b.device, g)) for b in buffers]
    idx = torch.randint(0, max(slots, 1), indices.shape, generator=g).to(indices.device, indices.dtype)
    return (idx, *new)


def _gather_verify_args(device, dtype, small):
    g = torch.Generator().manual_seed(3)
    hidden = 64 if small else 4096
    out = []
    for b in ((0, 3, 37) if small else (1, 16, 256)):
        like = (torch.empty(b, dtype=torch.int64, device=device), torch.empty(1024, 4, device=device),
                torch.empty(1024, 4, dtype=torch.int64, device=device), torch.empty(1024, dtype=torch.int64,
                                                                                  device=device),
                torch.empty(1024, hidden, dtype=dtype, device=device))
        out.append(_gather_like(like, g))
    return out


def _corrupt_gather(out):
    first = out[0]
    return (first + 1 if first is not None else None,) + tuple(out[1:])


GATHER = Check(
    fusion="spec_gather", kernel="gather_rows",
    fused=run_gather_rows, unsupported=gather_unsupported_reason, reference=gather_rows_reference,
    random_like=_gather_like, error=_exact, tolerance=lambda args: 0.0,
    corrupt=_corrupt_gather, verify_args=_gather_verify_args,
)

# ---- qk_norm_fp8: the plain-torch static FP8 quant that inductor fuses (it runs only while tracing, so it
# has no self-check or shadow call; `hotfuse verify` checks it against the unfused formula, bytes exact)

FP8_LIMIT = 448.0


def _quant_like(args, g):
    x, scale = args
    return _rand(x.shape, x.dtype, x.device, g, 40.0), scale


def _quant_verify_args(device, dtype, small):
    g = torch.Generator().manual_seed(4)
    shapes = [(3, 256), (17, 1000)] if small else [(16, 4096), (4096, 4096), (333, 5120)]
    return [(_rand(s, dtype, device, g, 40.0), torch.tensor([sc], device=device))
            for s in shapes for sc in (0.02, 3.7e-3)]


QUANT = Check(
    fusion="qk_norm_fp8", kernel="static_fp8_quant",
    fused=lambda x, scale: static_fp8_quant(x, scale, torch.float8_e4m3fn, -FP8_LIMIT, FP8_LIMIT),
    unsupported=lambda x, scale: None,  # plain torch: it takes anything
    reference=lambda x, scale: (x.float() * scale.float().reciprocal()).clamp(-FP8_LIMIT, FP8_LIMIT)
    .to(torch.float8_e4m3fn),
    random_like=_quant_like,
    error=lambda out, ref, args: 0.0 if torch.equal(out.view(torch.uint8), ref.view(torch.uint8)) else INF,
    tolerance=lambda args: 0.0,
    corrupt=lambda out: (out.float() * 2).to(out.dtype),
    verify_args=_quant_verify_args, triton=False,
)

CHECKS: tuple[Check, ...] = (SOFTMAX, SOFTMAX_INPLACE, SAMPLE, FILTERED_SAMPLE, ROUTE, TOPK, GATHER, QUANT)
