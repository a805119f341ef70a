"""Fused temperature + softmax, and fused temperature + sample: the public API, the torch references and warm-up.

temperature_softmax(logits [B, V], temperatures [B] or [B, 1], out=None) -> probs [B, V]
    softmax(logits / t) per row, fp32 math, output in the logits' dtype; in place when `out is logits`.
temperature_sample(logits [B, V], temperatures, seeds [B] int64) -> token ids [B] int64
    one sample per row from softmax(logits / t) by a two-stage Gumbel-max race (columns of tokens by their mass,
    then a token inside the winning column), reading the logits once and never writing probabilities.
    Deterministic for given seeds: a row's token does not depend on the batch around it.
filtered_sample(logits [B, V], temperatures, top_k, top_p, min_p, seeds, rule) -> token ids [B] int64
    one exact sample per row from softmax(logits / t) restricted to what min-p, top-k and top-p keep under an
    engine's rule (filters.RULES), renormalised; temperature 0 is greedy (the first largest logit), "off" values
    (k <= 0 or >= V, p >= 1, min-p <= 0) mix freely with active ones. No probabilities written, no sort of the
    vocabulary (search.py, filtered.py). Deterministic for given seeds; a row with no filter draws what
    temperature_sample does.
position_keyed_seeds(request_seeds [B] int64, positions [B]) -> seeds [B] int64
    one Philox key per (request seed, token position): the noise of a seeded request's n-th token depends on
    nothing else, so the request draws the same tokens in any batch, on any replay.

Each public function takes the kernels' path for inputs they handle (`unsupported_reason` is None) and the torch
reference for the rest. `run_temperature_softmax` / `run_temperature_sample` are the kernels alone, for callers
that checked the inputs already (hotfuse.safety: one check per call, counted there). Every function takes a
`tuning` (plan.Tuning, frozen): tools and tests pass their own instead of changing module state.

The package: `plan` (tuning, cluster tables, geometry), `softmax` and `race` (the kernels and their launch),
`filters` (the engines' rules and the filtered references), `search` (filtered sampling's split threshold search),
`filtered` (its launch and its one-program kernel), hotfuse.kernels.cluster (the thread-block cluster exchange
both cluster kernels use). It knows nothing about engines and keeps no books.
"""

from __future__ import annotations

import torch

from hotfuse.kernels import placement_reason
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, Tuning, cluster_race_geometry, sample_plan, softmax_plan, \
    softmax_variant
from hotfuse.kernels.sampling.filtered import CUDA_MAX_ROWS, CUDA_PENDING, MAX_VOCAB, launch_filtered_sample, \
    runs_on_cuda
from hotfuse.kernels.sampling.filters import RULES, FilterRule, filtered_sample_reference, resolve_rule
from hotfuse.kernels.sampling.race import launch_cluster_race, launch_sample
from hotfuse.kernels.sampling.softmax import launch_softmax

__all__ = ["DEFAULT_TUNING", "FilterRule", "RULES", "Tuning", "filtered_sample", "filtered_sample_reference",
           "filtered_unsupported_reason", "position_keyed_seeds", "run_filtered_sample", "run_temperature_sample",
           "run_temperature_softmax", "temperature_sample", "temperature_sample_reference", "temperature_softmax",
           "temperature_softmax_reference", "unsupported_reason", "warm_up"]


# ---------------------------------------------------------------------------------------------------------------
# torch references (the unfused path; also what the kernels are tested against)
# ---------------------------------------------------------------------------------------------------------------

def _temperature_column(temperatures: torch.Tensor, rows: int) -> torch.Tensor:
    return temperatures.reshape(rows, 1).to(torch.float32)


def temperature_softmax_reference(logits: torch.Tensor, temperatures: torch.Tensor,
                                  out: torch.Tensor | None = None) -> torch.Tensor:
    probs = torch.softmax(logits.float() / _temperature_column(temperatures, logits.shape[0]), dim=-1)
    if out is None:
        return probs.to(logits.dtype)
    out.copy_(probs)
    return out


def temperature_sample_reference(logits: torch.Tensor, temperatures: torch.Tensor,
                                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Exponential race on the exact probabilities: argmax(p / E), E ~ Exp(1). Same law as the kernel."""
    if logits.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=logits.device)
    logits = logits.float().masked_fill(torch.isnan(logits), float("-inf"))  # a NaN logit is never drawn
    probs = temperature_softmax_reference(logits, temperatures)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return probs.div_(noise).argmax(dim=-1)


def seeded_sample_reference(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """The reference keyed by the first seed (a host read: for inputs the kernels do not take)."""
    generator = torch.Generator(device=logits.device)
    generator.manual_seed(int(seeds.reshape(-1)[0]) if seeds.numel() else 0)
    return temperature_sample_reference(logits, temperatures, generator)


# ---------------------------------------------------------------------------------------------------------------
# which inputs the kernels take
# ---------------------------------------------------------------------------------------------------------------

def unsupported_reason(logits: torch.Tensor, temperatures: torch.Tensor, out: torch.Tensor | None = None,
                       seeds: torch.Tensor | None = None) -> str | None:
    """Why the kernels cannot take these inputs (softmax: `out`; sample: `seeds`), or None when they can. Inputs
    outside the contract raise ValueError (nothing sensible to compute, by a kernel or a reference)."""
    _check_contract(logits, temperatures)
    if seeds is not None and logits.shape[0] and logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary: there is no token to draw")
    reason = placement_reason(logits, floats=True)
    if reason is not None:
        return reason
    if logits.shape[1] > 0 and logits.stride(1) != 1:
        return "non-contiguous rows"
    if temperatures.device != logits.device:
        return "temperatures on another device"
    if out is not None:
        if out.shape != logits.shape or out.dtype != logits.dtype or out.device != logits.device:
            return "out shape/dtype/device"
        if out.shape[1] > 0 and out.stride(1) != 1:
            return "non-contiguous out rows"
    if seeds is not None and (seeds.numel() != logits.shape[0] or seeds.device != logits.device):
        return "seeds shape/device"
    return None


def _check_contract(logits: torch.Tensor, temperatures: torch.Tensor) -> None:
    """Inputs outside the documented contract are errors, not fallbacks: nothing sensible to compute."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got shape {tuple(logits.shape)}")
    if temperatures.numel() != logits.shape[0]:
        raise ValueError(f"temperatures must have one value per row: {temperatures.numel()} for {logits.shape[0]} rows")


# ---------------------------------------------------------------------------------------------------------------
# the kernels
# ---------------------------------------------------------------------------------------------------------------

def run_temperature_softmax(logits: torch.Tensor, temperatures: torch.Tensor, out: torch.Tensor | None = None, *,
                            tuning: Tuning = DEFAULT_TUNING) -> torch.Tensor:
    """The softmax kernels on inputs they take (`unsupported_reason(logits, temperatures, out)` is None)."""
    _check_contract(logits, temperatures)
    if out is None:
        out = torch.empty_like(logits)
    if logits.numel():
        launch_softmax(logits, temperatures, out, tuning)
    return out


def temperature_softmax(logits: torch.Tensor, temperatures: torch.Tensor, *, out: torch.Tensor | None = None,
                        tuning: Tuning = DEFAULT_TUNING) -> torch.Tensor:
    """softmax(logits / temperatures) per row in fp32, written in the logits' dtype (in place if out is logits).

    logits: [B, V] fp32/fp16/bf16, unit stride along V. temperatures: [B] or [B, 1], any float dtype, > 0.
    -inf entries are masked. Rows with NaN or +inf logits have no defined distribution: their output is
    unspecified (engines screen NaN logits before sampling).
    """
    if unsupported_reason(logits, temperatures, out) is not None:
        return temperature_softmax_reference(logits, temperatures, out)
    return run_temperature_softmax(logits, temperatures, out, tuning=tuning)


def run_temperature_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor, *,
                           tuning: Tuning = DEFAULT_TUNING) -> torch.Tensor:
    """The sampling kernels on inputs they take (`unsupported_reason(logits, temperatures, seeds=seeds)` is None)."""
    _check_contract(logits, temperatures)
    rows = logits.shape[0]
    if rows and logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary: there is no token to draw")
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows:
        launch_sample(logits, temperatures, seeds, out, tuning)
    return out


def temperature_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor, *,
                       tuning: Tuning = DEFAULT_TUNING) -> torch.Tensor:
    """One token per row from softmax(logits / temperatures), without writing probabilities. NaN logits are
    never drawn (treated as masked); rows with +inf logits are outside the contract.

    seeds: [B] int64 on the logits' device, one Philox key per row (the same seeds give the same tokens).
    Returns int64 token ids [B].
    """
    if unsupported_reason(logits, temperatures, seeds=seeds) is not None:
        return seeded_sample_reference(logits, temperatures, seeds)
    return run_temperature_sample(logits, temperatures, seeds, tuning=tuning)


def _check_filters(logits: torch.Tensor, *per_row: torch.Tensor) -> None:
    for values in per_row:
        if values.numel() != logits.shape[0]:
            raise ValueError(f"sampling parameters must have one value per row: {values.numel()} for "
                             f"{logits.shape[0]} rows")


def filtered_unsupported_reason(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor,
                                top_p: torch.Tensor, min_p: torch.Tensor, seeds: torch.Tensor) -> str | None:
    """Why the filtered kernel cannot take these inputs, or None when it can (ValueError outside the contract)."""
    _check_filters(logits, top_k, top_p, min_p)
    reason = unsupported_reason(logits, temperatures, seeds=seeds)
    if reason is not None:
        return reason
    if logits.device.type == "cuda" and not runs_on_cuda(logits.shape[0]):
        return CUDA_PENDING
    if logits.shape[1] >= MAX_VOCAB:
        return f"vocabulary of {logits.shape[1]} tokens (the kernel takes fewer than {MAX_VOCAB})"
    if any(t.device != logits.device for t in (top_k, top_p, min_p)):
        return "sampling parameters on another device"
    if top_k.dtype.is_floating_point or not top_p.dtype.is_floating_point or not min_p.dtype.is_floating_point:
        return "sampling parameter dtypes (top_k integer, top_p and min_p floating point)"
    return None


def run_filtered_sample(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                        min_p: torch.Tensor, seeds: torch.Tensor, rule: FilterRule, *,
                        tuning: Tuning = DEFAULT_TUNING, thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """The filtered kernel on inputs it takes (`filtered_unsupported_reason(...)` is None). `thresholds`: see
    filtered.launch_filtered_sample (tests read what each row kept from it)."""
    _check_contract(logits, temperatures)
    _check_filters(logits, top_k, top_p, min_p)
    rows = logits.shape[0]
    if rows and logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary: there is no token to draw")
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows:
        launch_filtered_sample(logits, temperatures, top_k, top_p, min_p, seeds, rule, out, tuning, thresholds)
    return out


def filtered_sample(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                    min_p: torch.Tensor, seeds: torch.Tensor, rule: FilterRule | str, *,
                    tuning: Tuning = DEFAULT_TUNING) -> torch.Tensor:
    """One token per row from the filtered, renormalised distribution of `rule` (filters.RULES; SGLang's rule
    with min-p in the batch is filters.SGLANG_WITH_MIN_P). temperatures 0: greedy. top_k: integers, top_p and
    min_p: floats, one per row; seeds: [B] int64, one Philox key per row. Returns int64 token ids [B]."""
    rule = resolve_rule(rule, min_p)
    if filtered_unsupported_reason(logits, temperatures, top_k, top_p, min_p, seeds) is not None:
        generator = torch.Generator(device=logits.device)
        generator.manual_seed(int(seeds.reshape(-1)[0]) if seeds.numel() else 0)
        return filtered_sample_reference(logits, temperatures, top_k, top_p, min_p, rule, generator)
    return run_filtered_sample(logits, temperatures, top_k, top_p, min_p, seeds, rule, tuning=tuning)


# ---------------------------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------------------------

POSITION_STRIDE = 0x9E3779B9  # odd, 32 bits: position * stride spreads over both 32-bit halves of the Philox key
MAX_POSITION = 1 << 31        # below it, position * stride fits in an int64 without overflow


def position_keyed_seeds(request_seeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """int64 [B]: the Philox key of each row, request_seed XOR position * POSITION_STRIDE. Distinct positions of
    one request get distinct keys, and a key depends only on its request's seed and its token's position. Device
    ops only (CUDA-graph safe); positions must lie in [0, MAX_POSITION)."""
    return torch.bitwise_xor(request_seeds.to(torch.int64), positions.to(torch.int64) * POSITION_STRIDE)


# ---------------------------------------------------------------------------------------------------------------
# warm-up
# ---------------------------------------------------------------------------------------------------------------

def _compile_rows(rows: int, vocab: int, stride: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A [rows, vocab] tensor whose rows overlap, for compiling only: one row of memory, and a row stride that
    Triton specialises as it does `stride` (multiple of 16 or not)."""
    step = 0 if stride % 16 == 0 else 16 + stride % 16
    storage = torch.zeros(step * rows + vocab, dtype=dtype, device=device)
    return storage.as_strided((rows, vocab), (step, 1))


def warm_up(like: torch.Tensor, max_rows: int = 4096, *, tuning: Tuning = DEFAULT_TUNING,
            filter_rules: tuple[FilterRule, ...] = ()) -> bool:
    """Compile every kernel variant that batches of 1..max_rows rows shaped like `like` (dtype, vocabulary, row
    stride) will use, and the filtered kernel for each of `filter_rules` (the rules the engine's adapter draws
    with). Engines call this during their start-up so that no request pays for Triton's compilation.
    Returns False when the kernels would not take such logits anyway.
    """
    if like.dim() != 2 or unsupported_reason(like, torch.ones(like.shape[0], device=like.device)) is not None:
        return False
    if like.device.type != "cuda":
        return True  # the interpreter compiles nothing
    vocab, stride, device = like.shape[1], max(like.stride(0), like.shape[1]), like.device
    first_rows = {}  # softmax variant -> the first batch size that uses it
    for rows in range(1, max_rows + 1):
        first_rows.setdefault(softmax_variant(rows, vocab, device, tuning), rows)
    for rows in first_rows.values():
        dummy = _compile_rows(rows, vocab, stride, like.dtype, device)
        launch_softmax(dummy, torch.ones(rows, device=device), dummy, tuning)
    # The sampler compiles once per program length (not per batch size): each one the plan can choose.
    dummy = _compile_rows(1, vocab, stride, like.dtype, device)
    seeds = torch.zeros(1, dtype=torch.int64, device=device)
    out = torch.empty(1, dtype=torch.int64, device=device)
    for tiles_per_program in sorted({sample_plan(1, vocab, device, tuning, t).tiles_per_program
                                     for t in range(1, tuning.sample_max_tiles_per_program + 1)}):
        launch_sample(dummy, torch.ones(1, device=device), seeds, out, tuning, tiles_per_program)
    if tuning.cluster_race is not None:
        cluster = cluster_race_geometry(tuning.cluster_race.min_rows, vocab, like.dtype, device, tuning)
        if cluster is not None:  # compiled for any number of rows
            launch_cluster_race(dummy, torch.ones(1, device=device), seeds, out, *cluster, tuning)
    one = torch.ones(1, device=device)
    # one compile per rule: the batch and the filters' values are runtime arguments
    for rule in filter_rules if CUDA_MAX_ROWS else ():
        launch_filtered_sample(dummy, one, torch.ones(1, dtype=torch.int32, device=device), one * 0.5, one * 0.1,
                               seeds, rule, out, tuning)
    return True
