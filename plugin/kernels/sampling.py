"""Fused temperature + softmax, and fused temperature + sample, as Triton kernels with torch references.

temperature_softmax(logits [B, V], temperatures [B] or [B, 1], out=None) -> probs [B, V]
    softmax(logits / t) per row, fp32 math, output in the logits' dtype; in place when `out is logits`.
temperature_sample(logits [B, V], temperatures, seeds [B] int64) -> token ids [B] int64
    one sample per row from softmax(logits / t) by the Gumbel-max race (argmax of logits / t + Gumbel
    noise), reading the logits once and never writing probabilities. Deterministic for given seeds and
    shape (the noise of a token is keyed by its row seed and its place in the launch geometry).

Rows are split into chunks so that even one row spreads over the whole GPU. Partials are combined in a
fixed order (no atomic reductions), so results are deterministic for a given shape.

temperature_softmax
- GPU, from 1.5M elements: one cooperative launch. Each program keeps its chunk of a row in registers,
  publishes the chunk's (max, sum), waits on an arrival counter until the whole row has published, then
  writes its probabilities: every element is read once and written once.
- Otherwise (and in the interpreter): two launches. The first reduces each chunk to (max, sum of
  exponentials); the second combines a row's partials, re-reads its chunk (walking backwards, so its
  first reads hit what the first pass left in L2) and writes. It is a programmatic dependent of the first
  (Hopper grid-dependency control), which shaves launch latency.

temperature_sample (exact samples of softmax(x / t); noise from Philox4x32-7 keyed by the row's seed)
- Below 4M elements, a one-level race in one launch: every token draws Gumbel noise, each chunk keeps its
  best (score, column), and the row's last chunk to finish (an arrival counter) picks the row's best from
  the chunk winners in a fixed order.
- From 4M elements, a two-level race: the softmax partial pass gives each chunk's mass; a chunk wins by
  Gumbel-max over log masses, then a token of that chunk by Gumbel-max over its logits. Only one chunk
  per row is re-read and draws noise.

The partial pass keeps a running (max, sum) per lane with one exponential per element (exp(-|x - m|) is
either the new term or the rescale of the old sum). Arrival counters live in a zeroed per-(device, stream)
workspace that every kernel leaves at zero again, so no launch pays for a memset.

No floating-point contraction in the softmax kernels: x / t is rounded once and that same value feeds
both the row maximum and the exponent (an FMA of logit * (1/t) - max would not: 0.2% error on the top
probability at temperature 1e-4). Geometry depends only on the shape and the device's multiprocessor
count; no atomics in reductions; no host synchronisation (the kernels capture in CUDA graphs).

Inputs the kernels do not handle go to the torch reference and are counted as fallbacks with the reason.
This module knows nothing about engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hotfuse.counters import count_fallback, count_fused
from hotfuse.kernels import placement_reason
from hotfuse.log import logger

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: everything falls back to the torch reference
    triton = None
    tl = None

FUSION = "sampler"


# ---------------------------------------------------------------------------------------------------
# torch references (the unfused path; also what the kernels are tested against)
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# dispatch: which inputs the kernels take
# ---------------------------------------------------------------------------------------------------

def unsupported_reason(logits: torch.Tensor, temperatures: torch.Tensor) -> str | None:
    """Why the kernels cannot take these inputs, or None when they can."""
    reason = placement_reason(logits, floats=True)
    if reason is not None:
        return reason
    if logits.shape[1] > 0 and logits.stride(1) != 1:
        return "non-contiguous rows"
    if temperatures.device != logits.device:
        return "temperatures on another device"
    return None


def _check_contract(logits: torch.Tensor, temperatures: torch.Tensor) -> None:
    """Inputs outside the documented contract are errors, not fallbacks: nothing sensible to compute."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got shape {tuple(logits.shape)}")
    if temperatures.numel() != logits.shape[0]:
        raise ValueError(f"temperatures must have one value per row: {temperatures.numel()} for {logits.shape[0]} rows")


@dataclass(frozen=True)
class Config:
    block: int          # elements per tile
    warps: int
    waves: int          # aim for about waves x multiprocessors programs
    early_launch: bool  # first softmax pass lets the second be scheduled at once (programmatic dependent launch)


# Chosen from a sweep on an H200 (tools/tune_sampler.py, figures in docs/BENCHMARKS.md): small problems are
# latency-bound and want many small programs, large ones want long programs with wide tiles.
CONFIGS = {
    "softmax": ((1 << 23, Config(1024, 4, 4, True)), (None, Config(4096, 8, 8, False))),
    "sample": ((1 << 20, Config(1024, 4, 2, False)), (None, Config(4096, 8, 4, False))),  # one-level race
    "sample_two_level": ((None, Config(1024, 4, 8, True)),),
}
SAMPLE_TWO_LEVEL_FROM = 1 << 22  # elements; below this every token drawing noise is faster (H200 sweep)


SAMPLE_MAX_CHUNK = 4096  # elements per chunk, two-level sampler: its pick kernel re-reads one chunk a row


@dataclass(frozen=True)
class Plan:
    """Launch geometry for one shape: a function of (rows, vocab, device) only, so results are repeatable."""

    config: Config
    chunk: int        # elements per program (whole tiles)
    chunks: int       # programs per row
    gpu: bool         # compiled for a GPU (not the interpreter): grid-dependency control, fast log2


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: keep several chunks per row so the split path is exercised


def plan(kind: str, rows: int, vocab: int, device: torch.device) -> Plan:
    config = next(c for limit, c in CONFIGS[kind] if limit is None or rows * vocab < limit)
    block = min(config.block, max(16, triton.next_power_of_2(max(vocab, 1))))  # Philox draws 4 values a lane
    if block != config.block:
        config = Config(block, min(config.warps, 4), config.waves, config.early_launch)
    tiles = triton.cdiv(max(vocab, 1), block)
    chunks = triton.cdiv(config.waves * _multiprocessors(device), max(rows, 1))
    if kind == "sample_two_level":  # the pick kernel re-reads one chunk per row and draws noise for it
        chunks = max(chunks, triton.cdiv(vocab, SAMPLE_MAX_CHUNK))
    chunks = max(1, min(tiles, chunks, 1024))
    chunk = triton.cdiv(tiles, chunks) * block
    return Plan(config, chunk, triton.cdiv(max(vocab, 1), chunk), device.type == "cuda")


# ---------------------------------------------------------------------------------------------------
# Triton kernels. Programs are laid out on one grid axis (rows times chunks can exceed the 65535 limit
# of the other axes), chunk-major within a row so that consecutive programs read consecutive memory.
# ---------------------------------------------------------------------------------------------------

if triton is not None:
    try:
        from triton.language.extra import libdevice
    except ImportError:  # pragma: no cover - very old Triton
        libdevice = None

    @triton.jit
    def _exp(x, GPU: tl.constexpr):
        if GPU:
            return libdevice.fast_expf(x)  # ex2.approx.ftz: results below 2^-126 flush to zero
        else:
            return tl.exp(x)

    @triton.jit
    def _log2(x, GPU: tl.constexpr):
        if GPU:
            return libdevice.fast_log2f(x)
        else:
            return tl.log2(x)

    @triton.jit
    def _softmax_partials_kernel(logits_ptr, row_stride, temp_ptr, part_max_ptr, part_sum_ptr,
                                 vocab, chunk, chunks, BLOCK: tl.constexpr, EARLY_LAUNCH: tl.constexpr,
                                 GPU: tl.constexpr):
        if EARLY_LAUNCH:
            tl.extra.cuda.gdc_launch_dependents()  # let the normalising pass get scheduled meanwhile
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
        base = logits_ptr + row.to(tl.int64) * row_stride
        start = c * chunk
        # Per lane, a running (max m, sum of exp(x - m)) with one exponential per element: exp(-|x - m|) is
        # the new term when x <= m and the rescale factor of the old sum when x > m. m starts at -FLT_MAX, not
        # -inf, so a -inf logit adds exp(-inf) = 0 and never forms inf - inf.
        m = tl.full([BLOCK], -3.4028234663852886e38, tl.float32)
        s = tl.zeros([BLOCK], tl.float32)
        for off in range(0, chunk, BLOCK):
            cols = start + off + tl.arange(0, BLOCK)
            x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32) * inv_t
            e = _exp(-tl.abs(x - m), GPU)
            s = tl.where(x > m, s * e + 1.0, s + e)
            m = tl.maximum(m, x)
        m_row = tl.max(m, axis=0)
        s_row = tl.sum(s * _exp(m - m_row, GPU), axis=0)
        m_row = tl.where(s_row == 0.0, float("-inf"), m_row)  # an all -inf chunk has no mass
        tl.store(part_max_ptr + row * chunks + c, m_row)
        tl.store(part_sum_ptr + row * chunks + c, s_row)

    @triton.jit
    def _softmax_normalize_kernel(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr,
                                  part_max_ptr, part_sum_ptr, rows, vocab, chunk, chunks,
                                  BLOCK: tl.constexpr, CHUNKS_P2: tl.constexpr, GPU: tl.constexpr):
        # Walk the tensor from its end: the first tiles read here are the last the first pass read.
        pid = rows * chunks - 1 - tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        if GPU:
            tl.extra.cuda.gdc_wait()  # launched as a programmatic dependent of the first pass
        inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
        idx = tl.arange(0, CHUNKS_P2)
        pm = tl.load(part_max_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
        ps = tl.load(part_sum_ptr + row * chunks + idx, mask=idx < chunks, other=0.0)
        m_row = tl.max(pm, axis=0)
        total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, tl.exp(pm - m_row)), axis=0)
        inv_total = 1.0 / total
        base = logits_ptr + row.to(tl.int64) * row_stride
        out_base = out_ptr + row.to(tl.int64) * out_row_stride
        start = c * chunk
        for off in range(0, chunk, BLOCK):
            cols = start + off + tl.arange(0, BLOCK)
            mask = cols < vocab
            x = tl.load(base + cols, mask=mask, other=float("-inf")).to(tl.float32) * inv_t
            p = tl.exp(x - m_row) * inv_total
            tl.store(out_base + cols, p.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _softmax_resident_kernel(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr, part_max_ptr,
                                 part_sum_ptr, arrivals_ptr, rows, vocab, ROUND_ROWS, CHUNK: tl.constexpr,
                                 CHUNKS: tl.constexpr):
        # One launch, every program resident at once (cooperative launch): a program keeps its chunk of a
        # row in registers, publishes the chunk's (max, sum), waits until every chunk of that row has
        # published (an arrival counter; the reduction itself is a fixed-order read of the partials, so
        # results are deterministic), then writes its chunk of probabilities. Each element is read once
        # and written once. Rows are processed ROUND_ROWS at a time; partials are double-buffered by
        # round parity, so a fast program cannot overwrite what a slow one has yet to read. The counters come
        # from a zeroed workspace and are zero again when the kernel ends (no memset launch per call).
        pid = tl.program_id(0)
        slot = pid // CHUNKS
        c = pid % CHUNKS
        cols = c * CHUNK + tl.arange(0, CHUNK)
        in_vocab = cols < vocab
        idx = tl.arange(0, CHUNKS)
        for rnd in range(0, tl.cdiv(rows, ROUND_ROWS)):
            row = rnd * ROUND_ROWS + slot
            active = row < rows
            safe_row = tl.where(active, row, 0)
            inv_t = 1.0 / tl.load(temp_ptr + safe_row).to(tl.float32)
            x = tl.load(logits_ptr + safe_row.to(tl.int64) * row_stride + cols, mask=in_vocab & active,
                        other=float("-inf")).to(tl.float32) * inv_t
            m = tl.max(x, axis=0)
            s = tl.sum(tl.where(m == float("-inf"), 0.0, tl.exp(x - m)), axis=0)
            base = ((rnd % 2) * ROUND_ROWS + slot) * CHUNKS
            tl.store(part_max_ptr + base + c, m)
            tl.store(part_sum_ptr + base + c, s)
            target = (rnd + 1) * CHUNKS
            tl.debug_barrier()  # every thread's partial store happens before this program's arrival
            arrived = tl.atomic_add(arrivals_ptr + slot, 1, sem="release", scope="gpu") + 1
            while arrived < target:
                arrived = tl.atomic_add(arrivals_ptr + slot, 0, sem="acquire", scope="gpu")
            tl.debug_barrier()
            pm = tl.load(part_max_ptr + base + idx, cache_modifier=".cg")
            ps = tl.load(part_sum_ptr + base + idx, cache_modifier=".cg")
            m_row = tl.max(pm, axis=0)
            total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, tl.exp(pm - m_row)), axis=0)
            p = tl.exp(x - m_row) * (1.0 / total)
            tl.store(out_ptr + safe_row.to(tl.int64) * out_row_stride + cols, p.to(out_ptr.dtype.element_ty),
                     mask=in_vocab & active)
        # Leave the counters as found (zero) for the next launch: the slot's last program to depart resets
        # them; by then every program of the slot has passed its last wait.
        if _last_to_arrive(arrivals_ptr + ROUND_ROWS + slot, CHUNKS):
            tl.store(arrivals_ptr + slot, 0)

    @triton.jit
    def _gumbel_from_bits(r, GPU: tl.constexpr):
        """Gumbel(0, 1) noise in base 2 (-log2(-log2 u), up to a constant) from 32 random bits.

        u spans all 32 bits. Near u = 1, where float32 cannot hold u, E = -log2(u) comes from v = 1 - u
        directly (E ~ v / ln 2 (1 + v / 2)), so the noise tail reaches ~33 bits instead of ~24: that
        matters for flat rows over a 256k vocabulary.
        """
        v = ((0xFFFFFFFF - r).to(tl.float32) + 0.5) * 2.3283064365386963e-10
        e = tl.where(v < 0.0009765625, v * 1.4426950408889634 * (1.0 + 0.5 * v), -_log2(1.0 - v, GPU))
        return -_log2(e, GPU)

    @triton.jit
    def _gumbel(seed, counters, GPU: tl.constexpr):
        """Gumbel noise per counter: one Philox4x32-7 call each, its first draw used. Seven rounds pass
        BigCrush (Salmon et al. 2011); curand's ten are a safety margin."""
        r, _r1, _r2, _r3 = tl.randint4x(seed, counters, 7)
        return _gumbel_from_bits(r, GPU)

    @triton.jit
    def _sample_race_kernel(logits_ptr, row_stride, temp_ptr, seed_ptr, part_score_ptr, part_index_ptr,
                            counters_ptr, out_ptr, vocab, chunk, chunks, BLOCK: tl.constexpr, GPU: tl.constexpr,
                            COMBINE_HERE: tl.constexpr, CHUNKS_P2: tl.constexpr):
        # One-level race (small problems): every token draws noise, logits scaled to base 2 so that
        # argmax(x log2(e) / t + G2) picks what argmax(x / t + G) would. One Philox call gives four
        # draws, so a tile is four quarter-tiles. Per-chunk winners go to a small workspace.
        QUARTER: tl.constexpr = BLOCK // 4
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)
        seed = tl.load(seed_ptr + row)
        base = logits_ptr + row.to(tl.int64) * row_stride
        start = c * chunk
        best = tl.full([QUARTER], float("-inf"), tl.float32)
        best_idx = tl.full([QUARTER], 2147483647, tl.int32)
        lane = tl.arange(0, QUARTER)
        for off in range(0, chunk, BLOCK):
            tile = (start + off) // BLOCK
            r0, r1, r2, r3 = tl.randint4x(seed, tile * QUARTER + lane, 7)
            for k in tl.static_range(4):
                r = r0 if k == 0 else (r1 if k == 1 else (r2 if k == 2 else r3))
                cols = start + off + k * QUARTER + lane
                mask = cols < vocab
                x = tl.load(base + cols, mask=mask, other=float("-inf")).to(tl.float32) * scale
                score = tl.where(mask, x + _gumbel_from_bits(r, GPU), float("-inf"))
                better = score > best  # strict: on ties a lane keeps its lower column
                best = tl.where(better, score, best)
                best_idx = tl.where(better, cols, best_idx)
        top = tl.max(best, axis=0)
        top_idx = tl.min(tl.where(best == top, best_idx, 2147483647), axis=0)
        tl.store(part_score_ptr + row * chunks + c, top)
        tl.store(part_index_ptr + row * chunks + c, top_idx)
        if COMBINE_HERE:  # the row's last program to finish picks the winner: no second launch
            if _last_to_arrive(counters_ptr + row, chunks):
                _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2, True)

    @triton.jit
    def _last_to_arrive(counter_ptr, arrivals):
        """True in exactly one program: the last of `arrivals` programs to call this on the counter, which
        then sees every store the others made before their call. That program puts the counter back to 0
        (the counters live in a zeroed workspace reused by the next launch)."""
        tl.debug_barrier()  # every thread's stores happen before this program's arrival
        last = tl.atomic_add(counter_ptr, 1, sem="acq_rel", scope="gpu") == arrivals - 1
        if last:
            tl.store(counter_ptr, 0)
        return last

    @triton.jit
    def _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2: tl.constexpr,
                      COHERENT: tl.constexpr):
        # fixed-order read of the row's partial winners: the highest score, then the lowest column
        idx = tl.arange(0, CHUNKS_P2)
        if COHERENT:  # written by other programs of this launch: read past the L1 cache
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"),
                            cache_modifier=".cg")
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647,
                            cache_modifier=".cg")
        else:
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647)
        top = tl.max(score, axis=0)
        choice = tl.min(tl.where(score == top, index, 2147483647), axis=0)
        tl.store(out_ptr + row, choice.to(tl.int64))

    @triton.jit
    def _sample_race_combine_kernel(part_score_ptr, part_index_ptr, out_ptr, chunks, CHUNKS_P2: tl.constexpr,
                                    GPU: tl.constexpr):
        row = tl.program_id(0)
        if GPU:
            tl.extra.cuda.gdc_wait()
        _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2, False)

    @triton.jit
    def _sample_pick_kernel(logits_ptr, row_stride, temp_ptr, seed_ptr, part_max_ptr, part_sum_ptr, out_ptr,
                            vocab, chunk, chunks, BLOCK: tl.constexpr, CHUNKS_P2: tl.constexpr, GPU: tl.constexpr):
        # Two-level exponential race, exact: a chunk wins with probability (its mass / row mass) by
        # Gumbel-max over log masses, then a token of that chunk by Gumbel-max over its logits / t.
        # Only one chunk per row is re-read and only it draws per-token noise.
        row = tl.program_id(0)
        if GPU:
            tl.extra.cuda.gdc_wait()
        scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)  # natural -> base-2 logits
        seed = tl.load(seed_ptr + row)
        idx = tl.arange(0, CHUNKS_P2)
        pm = tl.load(part_max_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
        ps = tl.load(part_sum_ptr + row * chunks + idx, mask=idx < chunks, other=0.0)
        log_mass = (pm + tl.log(ps)) * 1.4426950408889634   # -inf for empty or fully masked chunks
        score = log_mass + _gumbel(seed, idx, GPU)
        score = tl.where(idx < chunks, score, float("-inf"))
        top = tl.max(score, axis=0)
        c = tl.min(tl.where(score == top, idx, CHUNKS_P2), axis=0)
        c = tl.minimum(c, chunks - 1)
        base = logits_ptr + row.to(tl.int64) * row_stride
        best = tl.full([BLOCK], float("-inf"), tl.float32)
        best_idx = tl.full([BLOCK], 2147483647, tl.int32)
        for off in range(0, chunk, BLOCK):
            cols = c * chunk + off + tl.arange(0, BLOCK)
            mask = cols < vocab
            x = tl.load(base + cols, mask=mask, other=float("-inf")).to(tl.float32) * scale
            s = tl.where(mask, x + _gumbel(seed, (1 << 26) + cols, GPU), float("-inf"))
            better = s > best  # strict: on ties a lane keeps its lower column
            best = tl.where(better, s, best)
            best_idx = tl.where(better, cols, best_idx)
        winner = tl.max(best, axis=0)
        choice = tl.min(tl.where(best == winner, best_idx, 2147483647), axis=0)
        # an all -inf row has no winner: report column 0 rather than an out-of-range id
        choice = tl.where(choice == 2147483647, 0, choice)
        tl.store(out_ptr + row, choice.to(tl.int64))

# Resident single-launch softmax (GPU only): chunk size per program, warps, programs per multiprocessor,
# and the problem size from which it beats the two-pass kernels (H200 sweep, docs/BENCHMARKS.md).
RESIDENT = {"enabled": True, "per_sm": 2, "max_vocab": 1 << 19, "min_elements": 3 << 19,
            # (elements below which, chunk, warps): smaller problems want more, smaller programs
            "shapes": ((1 << 21, 8192, 16), (None, 16384, 8))}


_COUNTERS: dict[tuple[int, int], torch.Tensor] = {}
_ALL_COUNTERS: list[torch.Tensor] = []  # never freed: CUDA graphs may have captured their addresses


def zeroed_counters(device: torch.device, n: int) -> torch.Tensor:
    """int32 arrival counters that are zero before and after every kernel that uses them.

    One workspace per (device, stream): kernels on one stream run one after another, so they never share a
    counter at the same time. Kernels put the counters they used back to zero, so no launch pays for a
    memset. (Graphs that sample must therefore not be replayed concurrently on several streams.)
    """
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device.index if device.index is not None else -1, stream)
    counters = _COUNTERS.get(key)
    if counters is None or counters.numel() < n:
        counters = torch.zeros(max(n, 4096), dtype=torch.int32, device=device)
        _COUNTERS[key] = counters
        _ALL_COUNTERS.append(counters)
    return counters


def _resident_geometry(rows: int, vocab: int, device: torch.device) -> tuple[int, int, int] | None:
    """(chunk, chunks per row, rows per round, warps) for the resident kernel, or None when it does not apply."""
    if not RESIDENT["enabled"] or device.type != "cuda" or vocab > RESIDENT["max_vocab"] \
            or rows * vocab < RESIDENT["min_elements"]:
        return None
    chunk, warps = next((c, w) for limit, c, w in RESIDENT["shapes"] if limit is None or rows * vocab < limit)
    chunks = triton.next_power_of_2(triton.cdiv(vocab, chunk))
    capacity = _multiprocessors(device) * RESIDENT["per_sm"]
    round_rows = min(rows, capacity // chunks)
    return (chunk, chunks, round_rows, warps) if round_rows >= 1 else None


def _launch_softmax_resident(logits, temperatures, out, chunk, chunks, round_rows, warps) -> None:
    rows, vocab = logits.shape
    part_max = torch.empty((2, round_rows, chunks), dtype=torch.float32, device=logits.device)
    part_sum = torch.empty((2, round_rows, chunks), dtype=torch.float32, device=logits.device)
    arrivals = zeroed_counters(logits.device, 2 * round_rows)  # arrivals, then departures, per slot
    _softmax_resident_kernel[(round_rows * chunks,)](
        logits, logits.stride(0), out, out.stride(0), temperatures.reshape(rows), part_max, part_sum, arrivals,
        rows, vocab, round_rows, CHUNK=chunk, CHUNKS=chunks, num_warps=warps,
        launch_cooperative_grid=True, enable_fp_fusion=False)


def _launch_softmax(logits: torch.Tensor, temperatures: torch.Tensor, out: torch.Tensor) -> None:
    rows, vocab = logits.shape
    resident = _resident_geometry(rows, vocab, logits.device)
    if resident is not None:
        try:
            _launch_softmax_resident(logits, temperatures, out, *resident)
            return
        except RuntimeError as exc:  # e.g. this device cannot hold the cooperative grid: stop trying
            RESIDENT["enabled"] = False
            logger.warning("hotfuse: resident softmax unavailable here (%s); using the two-pass kernels", exc)
    p = plan("softmax", rows, vocab, logits.device)
    c = p.config
    part_max = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_sum = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    temps = temperatures.reshape(rows)
    grid = (rows * p.chunks,)
    _softmax_partials_kernel[grid](logits, logits.stride(0), temps, part_max, part_sum, vocab, p.chunk, p.chunks,
                                   BLOCK=c.block, EARLY_LAUNCH=p.gpu and c.early_launch, GPU=p.gpu,
                                   num_warps=c.warps, enable_fp_fusion=False)
    _softmax_normalize_kernel[grid](logits, logits.stride(0), out, out.stride(0), temps, part_max, part_sum, rows,
                                    vocab, p.chunk, p.chunks, BLOCK=c.block,
                                    CHUNKS_P2=triton.next_power_of_2(p.chunks), GPU=p.gpu, num_warps=c.warps,
                                    enable_fp_fusion=False, **({"launch_pdl": True} if p.gpu else {}))


def temperature_softmax(logits: torch.Tensor, temperatures: torch.Tensor, *,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(logits / temperatures) per row in fp32, written in the logits' dtype (in place if out is logits).

    logits: [B, V] fp32/fp16/bf16, unit stride along V. temperatures: [B] or [B, 1], any float dtype, > 0.
    -inf entries are masked. Rows with NaN or +inf logits have no defined distribution: their output is
    unspecified (engines screen NaN logits before sampling).
    """
    _check_contract(logits, temperatures)
    reason = unsupported_reason(logits, temperatures)
    if reason is None and out is not None:
        if out.shape != logits.shape or out.dtype != logits.dtype or out.device != logits.device:
            reason = "out shape/dtype/device"
        elif out.shape[1] > 0 and out.stride(1) != 1:
            reason = "non-contiguous out rows"
    if reason is not None:
        count_fallback(FUSION, reason)
        return temperature_softmax_reference(logits, temperatures, out)
    count_fused(FUSION)
    if out is None:
        out = torch.empty_like(logits)
    if logits.numel():
        _launch_softmax(logits, temperatures, out)
    return out


def temperature_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """One token per row from softmax(logits / temperatures), without writing probabilities. NaN logits are
    never drawn (treated as masked); rows with +inf logits are outside the contract.

    seeds: [B] int64 on the logits' device, one Philox key per row (the same seeds give the same tokens).
    Returns int64 token ids [B].
    """
    _check_contract(logits, temperatures)
    rows = logits.shape[0]
    if rows and logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary: there is no token to draw")
    reason = unsupported_reason(logits, temperatures)
    if reason is None and (seeds.numel() != rows or seeds.device != logits.device):
        reason = "seeds shape/device"
    if reason is not None:
        count_fallback(FUSION, reason)
        generator = torch.Generator(device=logits.device)
        generator.manual_seed(int(seeds.reshape(-1)[0]) if seeds.numel() else 0)  # host read: fallback only
        return temperature_sample_reference(logits, temperatures, generator)
    count_fused(FUSION)
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows:
        _launch_sample(logits, temperatures, seeds, out)
    return out


# One-level race: the row's last program combines the chunk winners in the same launch (else a second launch).
# The two-level race keeps its separate pick launch: picking in the row's last program was slower (H200).
ONE_LAUNCH_SAMPLING = True


def _launch_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor, out: torch.Tensor) -> None:
    rows, vocab = logits.shape
    temps, seeds, pdl = temperatures.reshape(rows), seeds.reshape(rows), {}
    two_level = rows * vocab >= SAMPLE_TWO_LEVEL_FROM
    p = plan("sample_two_level" if two_level else "sample", rows, vocab, logits.device)
    c = p.config
    if p.gpu:
        pdl = {"launch_pdl": True}
    part_a = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_b = torch.empty((rows, p.chunks), dtype=torch.float32 if two_level else torch.int32, device=logits.device)
    chunks_p2 = triton.next_power_of_2(p.chunks)
    if not two_level:
        one_launch = ONE_LAUNCH_SAMPLING
        counters = zeroed_counters(logits.device, rows) if one_launch else part_b  # (unused with two launches)
        _sample_race_kernel[(rows * p.chunks,)](
            logits, logits.stride(0), temps, seeds, part_a, part_b, counters, out, vocab, p.chunk, p.chunks,
            BLOCK=c.block, GPU=p.gpu, COMBINE_HERE=one_launch, CHUNKS_P2=chunks_p2, num_warps=c.warps)
        if not one_launch:
            _sample_race_combine_kernel[(rows,)](part_a, part_b, out, p.chunks, CHUNKS_P2=chunks_p2, GPU=p.gpu,
                                                 num_warps=1, **pdl)
        return
    _softmax_partials_kernel[(rows * p.chunks,)](
        logits, logits.stride(0), temps, part_a, part_b, vocab, p.chunk, p.chunks,
        BLOCK=c.block, EARLY_LAUNCH=p.gpu and c.early_launch, GPU=p.gpu, num_warps=c.warps, enable_fp_fusion=False)
    _sample_pick_kernel[(rows,)](
        logits, logits.stride(0), temps, seeds, part_a, part_b, out, vocab, p.chunk, p.chunks,
        BLOCK=min(triton.next_power_of_2(p.chunk), 4096), CHUNKS_P2=chunks_p2, GPU=p.gpu,
        num_warps=8 if p.chunk >= 2048 else 4, enable_fp_fusion=False, **pdl)


def warm_up(like: torch.Tensor, rows: tuple[int, ...] = (1, 3)) -> bool:
    """Compile both kernels for logits shaped like `like` (dtype, vocabulary, row stride), uncounted.

    Engines call this during their start-up so that no request pays for Triton's compilation. Returns
    False when the kernels would not take such logits anyway.
    """
    if like.dim() != 2 or unsupported_reason(like, torch.ones(like.shape[0], device=like.device)) is not None:
        return False
    vocab, stride = like.shape[1], max(like.stride(0), like.shape[1])
    for n in rows:
        dummy = torch.randn(n, stride, device=like.device).to(like.dtype)[:, :vocab]
        temps = torch.ones(n, device=like.device)
        _launch_softmax(dummy, temps, dummy)
        _launch_sample(dummy, temps, torch.zeros(n, dtype=torch.int64, device=like.device),
                       torch.empty(n, dtype=torch.int64, device=like.device))
    return True
