"""Filtered sampling's launch, and its one-program kernel: temperature, min-p, top-k and top-p, then one exact draw.

`launch_filtered_sample` runs the split threshold search (search.py: a row read on many multiprocessors per launch),
then the race over what each row keeps (settle.py, which also settles the rows whose search ended on a small
window), then this module's kernel for the rows the search left undecided (a window still larger than its buffer
after the last pass: flat rows, a large top-k with a renormalised top-p). That kernel, one program per row, is exact
for every row but reads the row on one multiprocessor: on an H100 it was slower than the engines' sampling wherever
top-k or top-p applies (docs/experiments/2026-12-05-filtered-kernel-h100.md), which is why it is now the fallback of
the split search and not the path. Rows the search decided exit at once.

For a row with temperature t (0: greedy), top-k k, top-p p and min-p q, every filter keeps an upper set of the
logits, so what the row may draw is "every finite logit x >= tau", and the rule (hotfuse.kernels.sampling.filters.
RULES) only says how tau is found. The program:

1. reads the row for its largest logit M (and the first index holding it: a greedy row, or a row with every logit
   masked, stores that index and is done). A row with no filter skips this read.
2. with top-k or top-p on: reads it again for the mass Z = sum 2^((x - M) log2(e) / t) (of the tokens min-p keeps,
   under vLLM's rule) and a histogram of how far below M each token lies (bins of 1/8 in log2 of probability),
   which says where the few hundred most probable tokens end;
3. finds each threshold by a window search over the logits' order-preserving 32-bit keys. A window [a, b) of keys
   holds the threshold; the count and mass of the tokens above b are known exactly. Each read counts and weighs
   the tokens of [mid, b) and copies them (their key and index) to a per-row scratch buffer of `candidates`
   slots; the window becomes [mid, b) or [a, mid) by whether the token just below mid is kept. The first mid
   comes from the histogram, so that for ordinary rows the first read already holds the threshold with at most
   `candidates` tokens; flat rows bisect the keys until the window fits. The buffer is then sorted (largest
   logit first, lowest index among equals) and the threshold is the last token whose mass (or count) above it
   passes the rule's test: a tie group at the threshold is kept whole.
     vLLM: min-p first (the window search sees only the tokens min-p keeps), top-k, then top-p on the mass left
     by min-p and top-k, strict (`mass above < p * kept mass`).
     SGLang: top-k and top-p jointly on the row's mass, `mass above <= p * Z`; with min-p in the batch, top-p on
     the top-k mass; min-p last. (Min-p keeps x with (M - x) log2(e) / t <= -log2(q) under both rules: the
     largest logit is always kept, so its renormalised probability is the maximum.)
4. races the kept tokens: the column race of `temperature_sample` (hotfuse.kernels.sampling.race) with every
   token below tau, or below min-p's floor, masked. Same layout, same noise: a row with no filter draws the token
   `temperature_sample` draws for the same seed.

Exact: the draw is a Gumbel-max race over the kept tokens' exact masses. Deterministic: fixed reductions, no atomics,
the buffer's order is fixed by the sort. Capturable in CUDA graphs: every loop runs on the device. NaN logits are
masked; rows with +inf logits are outside the contract. Inputs are not checked here (`hotfuse.kernels.sampling`).
"""

from __future__ import annotations

import torch

from hotfuse.kernels import tl, triton
from hotfuse.kernels.sampling.filters import FilterRule
from hotfuse.kernels.sampling import search, settle
from hotfuse.kernels.sampling.plan import (COLUMN_DEPTH, COLUMN_LANES, SAMPLE_WARPS, Tuning,
                                          later_search_pass_plan, sample_plan, search_pass_plan)
from hotfuse.kernels.sampling.race import scratch, zeroed_counters

# Filtered sampling runs on CUDA only for batches where the bench measured it faster than every engine path beside
# it (tools/bench_filtered.py, docs/BENCHMARKS.md) and the adapters' CUDA paths have run with it: up to CUDA_MAX_ROWS
# rows (0: none; on 2026-12-08 an H100 bench measured it faster at all 75 shapes, B 1-256, but the adapters' CUDA
# paths have not run with it yet). Larger CUDA batches are declined with CUDA_PENDING (the adapters keep their
# earlier paths, counted), and the kernels run where CI checks
# them: CPU tensors through Triton's interpreter. The GPU suite calls the kernels directly, so it tests them
# regardless.
CUDA_MAX_ROWS = 0
CUDA_PENDING = "filtered kernel slower than the engines' sampling on GPUs at this batch size"


def runs_on_cuda(rows: int) -> bool:
    return rows <= CUDA_MAX_ROWS


HISTOGRAM_BINS = 1024  # bins of 1/8 in log2 of probability below the row's largest logit; the last one: the rest
MAX_VOCAB = 1 << 24    # a token index takes 24 bits of a candidate's sort key

if triton is not None:
    from hotfuse.kernels.sampling.race import _best, _column_log_mass, _column_noise, _depth_noise
    from hotfuse.kernels.sampling.search import MAX_BLOCK, _largest_logit

    KEY_OF_INF = tl.constexpr(0x7F800000)          # key of +inf; every finite logit's key is below it
    KEY_OF_MINUS_MAX = tl.constexpr(-2139095040)   # key of -FLT_MAX: the smallest finite logit's key
    LAST_CANDIDATE = tl.constexpr(1 << 62)         # sorts after every candidate

    @triton.jit
    def _key(x):
        """An int32 key of an fp32 value with the values' order (negative values: all bits but the sign flipped)."""
        bits = x.to(tl.int32, bitcast=True)
        return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)

    @triton.jit
    def _value(key):
        key = key.to(tl.int32)
        return tl.where(key < 0, key ^ 0x7FFFFFFF, key).to(tl.float32, bitcast=True)

    @triton.jit
    def _load_block(base, block, vocab, BLOCK: tl.constexpr):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(base + offs, mask=offs < vocab, other=float("-inf")).to(tl.float32)
        x = tl.where(x == x, x, float("-inf"))  # NaN: masked
        return tl.where(x == 0.0, 0.0, x), offs  # -0.0 and 0.0: one value, one key

    @triton.jit
    def _row_histogram(base, vocab, blocks, top, scale, depth_limit, BINS: tl.constexpr, CAP: tl.constexpr,
                       BLOCK: tl.constexpr):
        """The row's mass Z, the mass and count of the tokens within depth_limit (min-p, vLLM), and the key below
        which the histogram says fewer than CAP of those lie (the window search's first cut; KEY_OF_MINUS_MAX when
        the first bin alone holds more)."""
        total = tl.zeros([], tl.float32)
        kept_mass = tl.zeros([], tl.float32)
        kept = tl.zeros([], tl.int32)
        counts = tl.zeros([BINS], tl.int32)
        for block in range(0, blocks):
            x, _offs = _load_block(base, block, vocab, BLOCK)
            depth = (top - x) * scale
            finite = x > float("-inf")
            inside = finite & (depth <= depth_limit)
            mass = tl.where(finite, tl.exp2(-depth), 0.0)
            total += tl.sum(mass, axis=0)
            kept_mass += tl.sum(tl.where(inside, mass, 0.0), axis=0)
            kept += tl.sum(inside.to(tl.int32), axis=0)
            bins = tl.where(inside, tl.minimum(depth * 8.0, BINS - 1.0), BINS - 1.0).to(tl.int32)
            counts += tl.histogram(bins, BINS)
        whole = tl.sum(((tl.cumsum(counts, axis=0) <= CAP) & (tl.arange(0, BINS) < BINS - 1)).to(tl.int32), axis=0)
        cut = _key(top - whole.to(tl.float32) * 0.125 / scale)
        return total, kept_mass, kept, tl.where(whole > 0, cut.to(tl.int64), KEY_OF_MINUS_MAX)

    @triton.jit
    def _window_read(base, vocab, blocks, top, scale, floor, depth_limit, key_from, key_to, buffer,
                     CAP: tl.constexpr, BLOCK: tl.constexpr):
        """Count and mass of the tokens x >= floor within depth_limit whose key is in [key_from, key_to), each
        copied to the buffer (the first CAP of them) as a sort key: largest logit first, then lowest index."""
        count = tl.zeros([], tl.int32)
        mass = tl.zeros([], tl.float32)
        for block in range(0, blocks):
            x, offs = _load_block(base, block, vocab, BLOCK)
            key = _key(x).to(tl.int64)
            depth = (top - x) * scale
            inside = (x > float("-inf")) & (x >= floor) & (depth <= depth_limit) & (key >= key_from) & (key < key_to)
            slot = count + tl.cumsum(inside.to(tl.int32), axis=0) - 1
            tl.store(buffer + slot, ((-key + KEY_OF_INF) << 24) | offs, mask=inside & (slot < CAP))
            count += tl.sum(inside.to(tl.int32), axis=0)
            mass += tl.sum(tl.where(inside, tl.exp2(-depth), 0.0), axis=0)
        return count, mass

    @triton.jit
    def _threshold(base, vocab, blocks, top, scale, floor, depth_limit, tokens, first_cut, target, buffer,
                   BY_MASS: tl.constexpr, STRICT: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
                   GPU: tl.constexpr):
        """The smallest logit tau among the tokens x >= floor within depth_limit (`tokens` of them) such that the
        count (or, by_mass, the mass) of those strictly above it is < target (strict) or <= target: the filter
        keeps x >= tau. Also returns the count and the mass of those with x >= tau."""
        # Invariant: tau's key is in [low, high); the tokens with a key below low are not kept; above_count and
        # above_mass are those of the tokens with a key >= high (all kept); `inside` tokens lie in [low, high).
        low = tl.where(floor > float("-inf"), _key(floor).to(tl.int64), KEY_OF_MINUS_MAX)
        high = tl.zeros([], tl.int64) + KEY_OF_INF
        above_count = tl.zeros([], tl.int32)
        above_mass = tl.zeros([], tl.float32)
        inside = tokens
        ready = tl.zeros([], tl.int1)  # the buffer holds the window's tokens
        cut = tl.where((first_cut > low) & (first_cut < high), first_cut, (low + high) // 2)
        searching = tl.full([], 1, tl.int1)
        while searching:
            count, mass = _window_read(base, vocab, blocks, top, scale, floor, depth_limit, cut, high, buffer, CAP,
                                       BLOCK)
            if BY_MASS:
                measure = above_mass + mass
            else:
                measure = (above_count + count).to(tl.float32)
            # the token just below the cut (if any) is not kept: the threshold is at or above the cut
            if STRICT:
                up = (cut == low) | (measure >= target)
            else:
                up = (cut == low) | (measure > target)
            above_count = tl.where(up, above_count, above_count + count)
            above_mass = tl.where(up, above_mass, above_mass + mass)
            inside = tl.where(up, count, inside - count)
            ready = up & (count <= CAP)
            low = tl.where(up, cut, low)
            high = tl.where(up, high, cut)
            searching = ~((ready & (inside <= CAP)) | (high - low <= 1))
            cut = tl.where(inside <= CAP, low, (low + high) // 2)
        tl.debug_barrier()  # the buffer's stores are visible to every thread of the program
        slot = tl.arange(0, CAP)
        valid = slot < inside
        candidates = tl.load(buffer + slot, mask=valid, other=LAST_CANDIDATE)
        if GPU:  # sorted (largest logit first, lowest index among equals): the mass before each, by a scan
            candidates = tl.sort(candidates)
            x = _value(-(candidates >> 24) + KEY_OF_INF)
            mass = tl.where(valid, tl.exp2((x - top) * scale), 0.0)
            before_mass = tl.cumsum(mass, axis=0) - mass
            before_count = slot
        else:  # the interpreter: the same sums by comparing every pair (its sort runs in Python, 10x slower)
            x = _value(-(candidates >> 24) + KEY_OF_INF)
            mass = tl.where(valid, tl.exp2((x - top) * scale), 0.0)
            before = candidates[None, :] < candidates[:, None]
            before_mass = tl.sum(tl.where(before, mass[None, :], 0.0), axis=1)
            before_count = tl.sum(before.to(tl.int32), axis=1)
        if BY_MASS:
            measure = above_mass + before_mass
        else:
            measure = (above_count + before_count).to(tl.float32)
        if STRICT:
            passes = valid & (measure < target)
        else:
            passes = valid & (measure <= target)
        # the passing tokens are a prefix of the order: tau is the smallest of them (none: the largest token)
        tau = tl.min(tl.where(passes, x, float("inf")), axis=0)
        tau = tl.where(tau == float("inf"), tl.max(tl.where(valid, x, float("-inf")), axis=0), tau)
        kept = valid & (x >= tau)
        kept_count = above_count + tl.sum(kept.to(tl.int32), axis=0)
        kept_mass = above_mass + tl.sum(tl.where(kept, mass, 0.0), axis=0)
        # a window of one value too large for the buffer, or an empty one: the threshold is its key
        lone = _value(low)
        whole = ~ready | (inside == 0)
        tau = tl.where(whole, lone, tau)
        kept_count = tl.where(whole, above_count + inside, kept_count)
        kept_mass = tl.where(whole, above_mass + inside.to(tl.float32) * tl.exp2((lone - top) * scale), kept_mass)
        return tau, kept_count, kept_mass

    @triton.jit
    def _race(base, vocab, tiles, scale, seed, tau, top, depth_limit, DEPTH: tl.constexpr, LANES: tl.constexpr,
              GPU: tl.constexpr):
        """The column race (race.py) over the tokens x >= tau within depth_limit of top: the winning token."""
        token_noise = _depth_noise(seed, DEPTH, GPU)
        lane = tl.arange(0, LANES)
        depth = tl.arange(0, DEPTH)
        best = tl.full([LANES], float("-inf"), tl.float32)
        best_col = tl.full([LANES], 0, tl.int32)
        for tile in range(0, tiles):
            cols = tile * (DEPTH * LANES) + depth[:, None] * LANES + lane[None, :]
            x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
            x = tl.where((x == x) & (x >= tau) & ((top - x) * scale <= depth_limit), x, float("-inf"))
            log_mass, _mass = _column_log_mass(x, scale, 0, GPU)
            score = log_mass + _column_noise(seed, tile, LANES, GPU)
            better = score > best  # strict: on ties a lane keeps its earlier column
            best = tl.where(better, score, best)
            best_col = tl.where(better, tile * LANES + lane, best_col)
        _top, col = _best(best, best_col, 0, GPU)
        tokens = (col // LANES) * (DEPTH * LANES) + depth * LANES + col % LANES
        in_vocab = tokens < vocab
        x = tl.load(base + tokens, mask=in_vocab, other=float("-inf")).to(tl.float32)
        keep = in_vocab & (x == x) & (x >= tau) & ((top - x) * scale <= depth_limit)
        scores = tl.where(keep, x * scale + token_noise, float("-inf"))
        _s, choice = _best(scores, tokens, 0, GPU)
        return choice

    @triton.jit
    def _filtered_sample_kernel(logits_ptr, row_stride, temp_ptr, top_k_ptr, top_p_ptr, min_p_ptr, seed_ptr,
                                buffer_ptr, out_ptr, thresholds_ptr, write_thresholds, vocab, blocks, tiles, state_ptr,
                                MIN_P_FIRST: tl.constexpr, TOP_P_RENORMALISED: tl.constexpr,
                                TOP_P_STRICT: tl.constexpr, CAP: tl.constexpr, BINS: tl.constexpr,
                                BLOCK: tl.constexpr, DEPTH: tl.constexpr, LANES: tl.constexpr, GPU: tl.constexpr,
                                STATE: tl.constexpr, S_STATUS: tl.constexpr, EXACT_KERNEL: tl.constexpr):
        # Only the rows the split search (search.py) left to this kernel: the others exit at once.
        row = tl.program_id(0)
        if tl.load(state_ptr + row * STATE + S_STATUS) != EXACT_KERNEL:
            return
        base = logits_ptr + row.to(tl.int64) * row_stride
        buffer = buffer_ptr + row.to(tl.int64) * CAP
        t = tl.load(temp_ptr + row).to(tl.float32)
        k = tl.load(top_k_ptr + row).to(tl.int32)
        p = tl.load(top_p_ptr + row).to(tl.float32)
        q = tl.load(min_p_ptr + row).to(tl.float32)
        seed = tl.load(seed_ptr + row)
        top_k_on = (k > 0) & (k < vocab)
        top_p_on = p < 1.0
        min_p_on = q > 0.0
        greedy = t == 0.0
        scale = 1.4426950408889634 / tl.where(greedy, 1.0, t)
        depth_limit = tl.where(min_p_on, -tl.log2(tl.where(min_p_on, q, 1.0)), float("inf"))
        top = tl.full([], float("-inf"), tl.float32)
        first = tl.zeros([], tl.int32)
        filtered = top_k_on | top_p_on | min_p_on
        if greedy | filtered:
            top, first = _largest_logit(base, 0, vocab, MAX_BLOCK)
        if greedy | (filtered & (top == float("-inf"))):  # (a row without a filter races as temperature_sample)
            tl.store(out_ptr + row, first.to(tl.int64))
        else:
            tau = tl.full([], float("-inf"), tl.float32)
            if top_k_on | top_p_on:
                # the tokens the threshold search sees: min-p's, under a min-p-first rule
                if MIN_P_FIRST:
                    search_limit = depth_limit
                else:
                    search_limit = tl.full([], float("inf"), tl.float32)
                total, kept_mass, kept, cut = _row_histogram(base, vocab, blocks, top, scale, search_limit, BINS, CAP,
                                                             BLOCK)
                floor = tl.full([], float("-inf"), tl.float32)
                p_tokens = kept
                if TOP_P_RENORMALISED:
                    p_mass = kept_mass
                else:
                    p_mass = total
                p_cut = cut
                if top_k_on:
                    tau_k, k_count, k_mass = _threshold(base, vocab, blocks, top, scale, floor, search_limit, kept,
                                                        cut, k.to(tl.float32), buffer, False, True, CAP, BLOCK, GPU)
                    tau = tau_k
                    if TOP_P_RENORMALISED:  # top-p on what top-k left
                        floor = tau_k
                        p_tokens = k_count
                        p_mass = k_mass
                        p_cut = _key(tau_k).to(tl.int64)
                if top_p_on:
                    tau_p, _c, _m = _threshold(base, vocab, blocks, top, scale, floor, search_limit, p_tokens, p_cut,
                                               p * p_mass, buffer, True, TOP_P_STRICT, CAP, BLOCK, GPU)
                    tau = tl.maximum(tau, tau_p)
            token = _race(base, vocab, tiles, scale, seed, tau, top, depth_limit, DEPTH, LANES, GPU)
            tl.store(out_ptr + row, token.to(tl.int64))
            if write_thresholds != 0:  # for tests: what the row kept (x >= tau, within min-p's depth of top)
                tl.store(thresholds_ptr + 5 * row, tau)
                tl.store(thresholds_ptr + 5 * row + 1, top)
                cut = tl.where(min_p_on, (depth_limit.to(tl.int32, bitcast=True) + 1).to(tl.float32, bitcast=True),
                               float("inf"))
                tl.store(thresholds_ptr + 5 * row + 2, cut)
                tl.store(thresholds_ptr + 5 * row + 3, scale)
                tl.store(thresholds_ptr + 5 * row + 4, 2.0)


def launch_filtered_sample(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                           min_p: torch.Tensor, seeds: torch.Tensor, rule: FilterRule, out: torch.Tensor,
                           tuning: Tuning, thresholds: torch.Tensor | None = None) -> None:
    """Draw one token per row into `out`: the split threshold search (search.py), the race over what each row
    keeps (settle.py), and this module's one-program kernel for the rows the search left to it.

    `thresholds` ([rows, 5] fp32, for tests): what each sampled row kept, the tokens with x >= tau and depth
    (top - x) * s below cut (s = log2(e) / t as the kernels computed it; an infinite cut: no depth limit), as
    (tau, top, cut, s, by) with by 1 for the split search and 2 for the one-program kernel; greedy rows and rows
    with every logit masked: untouched."""
    rows, vocab = logits.shape
    device = logits.device
    plan = sample_plan(rows, vocab, device, tuning)  # the largest-logit launch's chunks (the race's)
    passes = (search_pass_plan(rows, vocab, device, tuning), later_search_pass_plan(rows, vocab, device, tuning))
    chunks, pass_chunks = plan.chunks, max(passes[0].chunks, passes[1].chunks)
    candidates = tuning.search_candidates
    # one scratch call: its tensors share one workspace
    (state, part_top, part_first, part_hist, part_tally, exact_buffer, race_score, race_index, race_tally, marks,
     columns, window) = scratch(device, [
        ((rows, search.STATE_FIELDS), torch.float32), ((rows, chunks), torch.float32), ((rows, chunks), torch.int32),
        ((rows, pass_chunks, tuning.search_bins), torch.int32), ((rows, pass_chunks, search.TALLIES), torch.float32),
        ((rows, tuning.filter_candidates), torch.int64), ((rows, chunks), torch.float32),
        ((rows, chunks), torch.int32), ((rows, chunks, search.TALLIES), torch.float32),
        ((rows, plan.tiles * COLUMN_LANES), torch.int8), ((rows, candidates), torch.int32),
        ((rows, candidates), torch.float32)])
    counters = zeroed_counters(device, rows)
    tile = COLUMN_DEPTH * COLUMN_LANES
    gpu = device.type == "cuda"
    chunks_p2 = triton.next_power_of_2(chunks)
    search._search_top_kernel[(rows * chunks,)](
        logits, logits.stride(0), temperatures.reshape(rows), top_k.reshape(rows), top_p.reshape(rows),
        min_p.reshape(rows), state, part_top, part_first, counters, out, vocab, plan.tiles_per_program, chunks,
        MIN_P_FIRST=rule.min_p_first, FIRST_SCALE=tuning.search_first_bins_per_depth, CHUNKS_P2=chunks_p2, TILE=tile,
        num_warps=SAMPLE_WARPS)
    for n in range(tuning.search_passes):
        split = passes[min(n, 1)]
        search._search_pass_kernel[(rows * split.chunks,)](
            logits, logits.stride(0), top_k.reshape(rows), top_p.reshape(rows), state, part_hist, part_tally,
            counters, vocab, split.tiles_per_program, split.chunks, FIRST=n == 0, LAST=n == tuning.search_passes - 1,
            RENORMALISED=rule.top_p_renormalised, STRICT=rule.top_p_boundary_strict, NB=tuning.search_bins,
            CAP=candidates, CHUNKS_P2=triton.next_power_of_2(split.chunks), TILE=tile, BLOCK=search.COUNT_STEP,
            STEP=tuning.search_step_blocks, num_warps=tuning.search_pass_warps)
    settle._race_window_kernel[(rows * chunks,)](
        logits, logits.stride(0), temperatures.reshape(rows), seeds.reshape(rows), state, race_score, race_index,
        race_tally, marks, counters, out, vocab, plan.tiles, plan.tiles_per_program, chunks, CHUNKS_P2=chunks_p2,
        DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES, GPU=gpu, num_warps=SAMPLE_WARPS)
    settle._settle_kernel[(rows,)](
        logits, logits.stride(0), seeds.reshape(rows), top_k.reshape(rows), top_p.reshape(rows), state, race_score,
        race_index, race_tally, marks.view(torch.int32), columns, window, out, vocab, plan.tiles, chunks,
        RENORMALISED=rule.top_p_renormalised, STRICT=rule.top_p_boundary_strict, CAP=candidates, CHUNKS_P2=chunks_p2,
        BI=min(settle.PAIR_BLOCK, candidates), DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES, MARK_WORDS=settle.MARK_WORDS,
        GPU=gpu, num_warps=settle.SETTLE_WARPS)
    column = search.COLUMN
    if thresholds is not None:
        done = (state[:, column["status"]] == search.STATUS["done"]).reshape(rows, 1)
        found = torch.stack([torch.full_like(state[:, 0], float("-inf")), state[:, column["top"]],
                             state[:, column["cut"]], state[:, column["scale"]], torch.ones_like(state[:, 0])], dim=1)
        thresholds.copy_(torch.where(done, found, thresholds))
    _filtered_sample_kernel[(rows,)](
        logits, logits.stride(0), temperatures.reshape(rows), top_k.reshape(rows), top_p.reshape(rows),
        min_p.reshape(rows), seeds.reshape(rows), exact_buffer, out,
        exact_buffer.view(torch.float32) if thresholds is None else thresholds, int(thresholds is not None), vocab,
        triton.cdiv(vocab, tile), triton.cdiv(vocab, tile), state, MIN_P_FIRST=rule.min_p_first,
        TOP_P_RENORMALISED=rule.top_p_renormalised, TOP_P_STRICT=rule.top_p_boundary_strict,
        CAP=tuning.filter_candidates, BINS=HISTOGRAM_BINS, BLOCK=tile, DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES,
        GPU=gpu, STATE=search.STATE_FIELDS, S_STATUS=column["status"],
        EXACT_KERNEL=search.STATUS["exact_kernel"], num_warps=SAMPLE_WARPS)
