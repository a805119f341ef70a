"""The threshold search of filtered sampling, split over many programs per row: a few launches, each reading the
row once on many multiprocessors, instead of one program reading it ten times.

Every filter keeps an upper set of the logits (filters.py), so what a row may draw is decided by one number. Here it
is a depth cut: with M the row's largest logit and s = log2(e) / t, a token's depth is d = (M - x) * s (log2 of how
much less probable it is than the best token; its mass is 2^-d), and the row keeps the tokens with d < cut.
Depth is a non-increasing function of x, so "d < cut" is an upper set of the logits, and tokens of equal depth are
one tie group (kept or dropped together). Min-p keeps d <= -log2(min_p) under both engines' rules.

Launches (grid: rows x chunks):

1. top (the column race's chunks, `plan.sample_plan`): each program the largest logit of its chunk (and the first
   index holding it); the row's last program to finish (an arrival counter, as in race.py) combines them in a
   fixed order. Greedy rows and rows with every logit masked get their token here; rows without top-k or top-p get
   their cut (min-p's, or none) and are done.
2. passes (`search_passes` of them; `plan.search_pass_plan`: as many chunks a row as keep about two programs a
   multiprocessor over the batch, so a pass is one wave and one that no row needs costs a load per program; the
   passes after the first may be split finer, `plan.later_search_pass_plan`; each step reads
   `search_step_blocks` blocks of COUNT_STEP tokens and folds them into per-lane tallies within a thread, so a step
   ends in one cross-warp exchange): the rest keep a window [d_top, d_bot) of depths: every token above it is
   kept, every token below it dropped, and the threshold lies inside. Each pass counts and weighs the tokens above
   the window again, exactly, and a histogram of the window's depths in `search_bins` bins (one tally per token),
   1/`search_first_bins_per_depth` of depth wide from depth 0 in the first pass, then 2^-e wide over the window,
   as fine as those bins allow while every bin index stays an exact fp32 integer (so a token's bin and the
   comparisons of later passes with the bin edges agree); and the window's exact mass (the first pass: the mass z
   every filter weighs against). Counts at the edges are exact; masses are known within bounds (a bin's tokens
   weigh between 2^-(its upper edge) and 2^-(its lower edge) each, and the window's mass less the bounds of what
   lies below an edge; widened by MASS_SLACK for rounding), and the combining program narrows the window to the
   edges between which a filter can still change its mind under those bounds. Once the window holds at most
   `search_candidates` tokens the row's status is SETTLE: no pass reads it again, and settle.py's race and
   settling launch find the exact cut among the window's tokens. A window of a single depth is decided at once
   (a tie group, kept or dropped whole).
3. settle.py's race over the tokens with d < cut (DONE rows: race.py's column race; SETTLE rows: the race, then the
   settling launch): a row with no filter draws what temperature_sample draws, and a filtered row draws with the
   same noise.
4. the exact one-program kernel (filtered.py) for the rows the passes left unresolved: a window still larger than
   the buffer after the last pass (flat rows, a large top-k with a renormalised top-p). Its launch costs little
   when no row needs it.

The rules (filters.RULES), as the search sees them: under vLLM's, min-p bounds the search space (the first window
is d < min-p's cut), top-k counts and top-p weighs only those tokens, and top-p's target is p times the mass top-k
keeps. Under SGLang's, top-k and top-p see the whole row (top-p against the row's mass, or with min-p in the batch
the top-k mass, `<=` instead of `<`) and min-p's cut applies last. While top-k's threshold is unknown, top-p's
target is known only within bounds (the mass kept by top-k above its known-kept cut, and below its known-dropped
cut); the window narrows only where the bounds decide, and its bottom follows top-k's until top-k's mass is known.

Deterministic: fixed reduction orders for every float sum; counts are integers (tl.histogram's shared-memory adds
on a GPU are integer adds, the same sums in any order); the arrival counter only elects the combining program.
Capturable in CUDA graphs: every decision is made on the device, launches are fixed.
Inputs are not checked here (`hotfuse.kernels.sampling`).
"""

from __future__ import annotations

from hotfuse.kernels import tl, triton

COUNT_STEP = 1024   # tokens of a block: the lanes of a pass's per-lane tallies (a step reads Tuning.search_step_blocks)
MASS_SLACK = 2.0 ** -10  # relative widening of the histogram's mass bounds (fp32 sums, approximate exp2)
TALLIES = 5         # per program: count and mass above the window, the window's mass, its shallowest, its deepest

# The per-row state, fp32 [rows, STATE_FIELDS] (counts are exact in fp32: vocabularies are below 2^24): the field
# names and their columns, and the row status codes after each launch (SKIP: the token is written already, a greedy
# row or one with every logit masked; EXACT_KERNEL: left to the one-program kernel).
FIELDS = ("status", "top", "scale", "cut", "limit", "d_top", "d_bot", "z",
          "kmass_low", "kmass_high", "bin_base", "bin_scale")
STATE_FIELDS = len(FIELDS)
COLUMN = {name: i for i, name in enumerate(FIELDS)}
STATUS = {"count": 0, "settle": 1, "done": 2, "skip": 3, "exact_kernel": 4}

if triton is not None:
    from hotfuse.kernels.sampling.race import _last_to_arrive

    STATE = tl.constexpr(STATE_FIELDS)
    (S_STATUS, S_TOP, S_SCALE, S_CUT, S_LIMIT, S_DTOP, S_DBOT, S_Z, S_KMASS_LOW, S_KMASS_HIGH, S_BIN_BASE,
     S_BIN_SCALE) = (tl.constexpr(i) for i in range(STATE_FIELDS))
    SLACK = tl.constexpr(MASS_SLACK)
    TALLY = tl.constexpr(TALLIES)
    MAX_BLOCK = tl.constexpr(1024)  # the largest logit's loop: 8 lanes a thread at 4 warps (few registers)
    COUNT, SETTLE, DONE, SKIP, EXACT_KERNEL = (tl.constexpr(STATUS[name]) for name in
                                             ("count", "settle", "done", "skip", "exact_kernel"))

    @triton.jit
    def _next_up(x):
        """The next fp32 above x >= +0 (finite); d < next_up(x) is d <= x."""
        return (x.to(tl.int32, bitcast=True) + 1).to(tl.float32, bitcast=True)

    @triton.jit
    def _pick(v, j, at):
        """v[at] for a 1-D v indexed by j."""
        return tl.sum(tl.where(j == at, v, 0), axis=0)

    @triton.jit
    def _filters_on(k, p, vocab):
        """(k as fp32, top-k on, top-k off, top-p on, top-p off) of a row. (A bool scalar meets a vector through
        tl.where: the interpreter cannot broadcast it in | and &.)"""
        return k.to(tl.float32), (k > 0) & (k < vocab), (k <= 0) | (k >= vocab), p < 1.0, p >= 1.0

    @triton.jit
    def _largest_logit(base, start, end, BLOCK: tl.constexpr):
        """(the largest of base[start:end], the first index holding it), NaN read as -inf; (-inf, start) when
        every value is -inf. Each lane keeps its own maximum and first index over the blocks (the loads are
        issued ahead), and the lanes are reduced once at the end."""
        best = tl.full([BLOCK], float("-inf"), tl.float32)
        at = tl.zeros([BLOCK], tl.int32) + start
        for block in tl.range(start, end, BLOCK, num_stages=3):
            offs = block + tl.arange(0, BLOCK)
            x = tl.load(base + offs, mask=offs < end, other=float("-inf")).to(tl.float32)
            better = x > best  # NaN never is; a later equal value neither
            at = tl.where(better, offs, at)
            best = tl.where(better, x, best)
        top = tl.max(best, axis=0)
        first = tl.min(tl.where(best == top, at, 2147483647), axis=0)
        return top + 0.0, first  # (+0.0: -0.0 becomes +0.0)

    @triton.jit
    def _search_top_kernel(logits_ptr, row_stride, temp_ptr, top_k_ptr, top_p_ptr, min_p_ptr, state_ptr,
                           part_top_ptr, part_first_ptr, counters_ptr, out_ptr, vocab, tiles_per_program, chunks,
                           MIN_P_FIRST: tl.constexpr, FIRST_SCALE: tl.constexpr, CHUNKS_P2: tl.constexpr,
                           TILE: tl.constexpr):
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        state = state_ptr + row * STATE
        t = tl.load(temp_ptr + row).to(tl.float32)
        k = tl.load(top_k_ptr + row).to(tl.int32)
        p = tl.load(top_p_ptr + row).to(tl.float32)
        q = tl.load(min_p_ptr + row).to(tl.float32)
        greedy = t == 0.0
        searched = ((k > 0) & (k < vocab)) | (p < 1.0)
        min_p_on = q > 0.0
        if ~(greedy | searched | min_p_on):  # a plain temperature row: the race alone
            if c == 0:
                tl.store(state + S_STATUS, DONE)
                tl.store(state + S_TOP, 0.0)
                tl.store(state + S_CUT, float("inf"))
        else:
            base = logits_ptr + row.to(tl.int64) * row_stride
            start = c * tiles_per_program * TILE
            end = tl.minimum(start + tiles_per_program * TILE, vocab)
            top, first = _largest_logit(base, start, end, MAX_BLOCK)
            tl.store(part_top_ptr + row * chunks + c, top)
            tl.store(part_first_ptr + row * chunks + c, first)
            if _last_to_arrive(counters_ptr + row, chunks):
                idx = tl.arange(0, CHUNKS_P2)
                tops = tl.load(part_top_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"),
                               cache_modifier=".cg")
                firsts = tl.load(part_first_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647,
                                 cache_modifier=".cg")
                top = tl.max(tops, axis=0)
                first = tl.min(tl.where(tops == top, firsts, 2147483647), axis=0)
                first = tl.where(top == float("-inf"), 0, first)
                if greedy | (top == float("-inf")):
                    tl.store(out_ptr + row, first.to(tl.int64))
                    tl.store(state + S_STATUS, SKIP)
                else:
                    scale = 1.4426950408889634 / t
                    depth_limit = -tl.log2(tl.where(min_p_on, q, 1.0)) + 0.0  # (+0.0: -0.0 becomes +0.0)
                    depth_limit = tl.where(depth_limit > 0.0, depth_limit, 0.0)
                    limit = tl.where(min_p_on, _next_up(depth_limit), float("inf"))
                    tl.store(state + S_TOP, top)
                    tl.store(state + S_SCALE, scale)
                    tl.store(state + S_LIMIT, limit)
                    tl.store(state + S_CUT, limit)
                    tl.store(state + S_DTOP, 0.0)
                    if MIN_P_FIRST:
                        tl.store(state + S_DBOT, limit)
                    else:
                        tl.store(state + S_DBOT, float("inf"))
                    tl.store(state + S_KMASS_LOW, 0.0)
                    tl.store(state + S_KMASS_HIGH, float("inf"))
                    tl.store(state + S_BIN_BASE, 0.0)
                    tl.store(state + S_BIN_SCALE, FIRST_SCALE * 1.0)
                    tl.store(state + S_STATUS, tl.where(searched, COUNT, DONE))

    @triton.jit
    def _depths(base, offs, end, top, scale, MASKED: tl.constexpr):
        if MASKED:
            x = tl.load(base + offs, mask=offs < end, other=float("-inf")).to(tl.float32)
        else:  # a whole block inside the row
            x = tl.load(base + offs).to(tl.float32)
        return (top - x) * scale  # -inf: +inf; NaN: NaN (outside every window)

    @triton.jit
    def _power_of_two(e):
        """2^e for an integer e in [-126, 127], exactly."""
        return ((e + 127) << 23).to(tl.float32, bitcast=True)

    @triton.jit
    def _exponent(x):
        """floor(log2(x)) of a normal fp32 x > 0, exactly (from its bits)."""
        return ((x.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127

    @triton.jit
    def _narrow(state, count, mass_lo, mass_hi, cuts, j, z, above_count, above_mass, d_top, d_bot, d_min, d_max, k,
                p, vocab, LAST: tl.constexpr, RENORMALISED: tl.constexpr, STRICT: tl.constexpr, NB: tl.constexpr,
                CAP: tl.constexpr):
        """The combining program's decision from a counting pass at NB ascending cuts (the last one: the window's
        bottom): count[j] tokens with d < cuts[j] (those above the window included), of a mass within
        [mass_lo[j], mass_hi[j]]. Narrows the window to the cuts between which a filter can still change its mind
        under those bounds (and sets the next pass's bins over it), or decides the row."""
        kf, k_on, k_off, p_on, p_off = _filters_on(k, p, vocab)
        keep_k = tl.where(k_off, True, count <= kf)  # every token with d < cut is among the top k (ties included)
        drop_k = tl.where(k_on, count >= kf, False)  # every token with d >= cut has k tokens above it
        kmass_low = tl.load(state + S_KMASS_LOW)
        kmass_high = tl.load(state + S_KMASS_HIGH)
        kmass_low = tl.maximum(kmass_low, tl.maximum(above_mass, tl.max(tl.where(keep_k, mass_lo, 0.0), axis=0)))
        kmass_high = tl.minimum(kmass_high, tl.min(tl.where(drop_k, mass_hi, float("inf")), axis=0))
        kmass_low = tl.where(k_on, kmass_low, z)
        kmass_high = tl.where(k_on, kmass_high, z)
        if RENORMALISED:
            target_low = p * kmass_low
            target_high = p * kmass_high
        else:
            target_low = p * z
            target_high = p * z
        if STRICT:
            keep_p = tl.where(p_off, True, mass_hi < target_low)
            drop_p = tl.where(p_on, mass_lo >= target_high, False)
        else:
            keep_p = tl.where(p_off, True, mass_hi <= target_low)
            drop_p = tl.where(p_on, mass_lo > target_high, False)
        if RENORMALISED:  # the window keeps top-k's threshold until top-k's mass is known
            drop_p = tl.where(k_off | (kmass_low == kmass_high), drop_p, False)
        hi = tl.max(tl.where(keep_k & keep_p, j, -1), axis=0)
        lo = tl.min(tl.where(drop_k | drop_p, j, NB), axis=0)
        new_top = tl.where(hi >= 0, _pick(cuts, j, hi), d_top)
        new_above_count = tl.where(hi >= 0, _pick(count, j, hi), above_count)
        new_bot = tl.where(lo < NB, _pick(cuts, j, lo), d_bot)
        bottom_count = tl.where(lo < NB, _pick(count, j, lo), _pick(count, j, NB - 1))
        window = bottom_count - new_above_count
        # a window of one depth: a tie group, kept or dropped whole. Its mass is exact (window * 2^-d_min), and so
        # is the mass above it: every token above the window (exact) and none of the window's.
        group_k = k_off | (above_count < kf)
        group_mass = window * tl.exp2(-d_min)
        group_kmass = tl.where(kmass_low == kmass_high, kmass_low, above_mass + tl.where(group_k, group_mass, 0.0))
        if RENORMALISED:
            group_target = p * tl.where(k_on, group_kmass, z)
        else:
            group_target = p * z
        if STRICT:
            group_p = p_off | (above_mass < group_target)
        else:
            group_p = p_off | (above_mass <= group_target)
        group_cut = tl.where(group_k & group_p, _next_up(d_min), d_top)
        # the next pass's bins: [lo_d, hi_d) holds the new window's tokens; bins of 2^-e, as fine as NB bins allow
        # while every bin index stays an exact fp32 integer (hi_d * 2^e < 2^23)
        lo_d = tl.maximum(new_top, d_min)
        hi_d = tl.minimum(new_bot, _next_up(d_max))
        span = tl.maximum(hi_d - lo_d, 1e-30)
        e = tl.minimum(_exponent(tl.minimum((NB - 1) / span, 1e30)), _exponent(tl.minimum(8388608.0 / hi_d, 1e30)))
        bin_scale = _power_of_two(tl.minimum(tl.maximum(e, -120), 100))
        limit = tl.load(state + S_LIMIT)
        if lo <= hi:  # the same cut keeps everything above it and drops everything below
            tl.store(state + S_CUT, tl.minimum(_pick(cuts, j, lo), limit))
            tl.store(state + S_STATUS, DONE)
        elif window <= 0.0:
            tl.store(state + S_CUT, tl.minimum(new_top, limit))
            tl.store(state + S_STATUS, DONE)
        elif d_min == d_max:  # the whole window is one depth
            tl.store(state + S_CUT, tl.minimum(group_cut, limit))
            tl.store(state + S_STATUS, DONE)
        else:
            tl.store(state + S_DTOP, new_top)
            tl.store(state + S_DBOT, new_bot)
            tl.store(state + S_KMASS_LOW, kmass_low)
            tl.store(state + S_KMASS_HIGH, kmass_high)
            tl.store(state + S_BIN_SCALE, bin_scale)
            tl.store(state + S_BIN_BASE, tl.floor(lo_d * bin_scale))
            if LAST:  # the race settles a small window; the one-program kernel takes the rest
                tl.store(state + S_STATUS, tl.where(window <= CAP, SETTLE, EXACT_KERNEL))
            else:
                tl.store(state + S_STATUS, tl.where(window <= CAP, SETTLE, COUNT))

    @triton.jit
    def _decide_from_histogram(part_hist_ptr, part_tally_ptr, state, row, chunks, vocab, k, p, above_count,
                               above_mass, d_top, d_bot, FIRST: tl.constexpr, LAST: tl.constexpr,
                               RENORMALISED: tl.constexpr, STRICT: tl.constexpr, NB: tl.constexpr,
                               CAP: tl.constexpr, CHUNKS_P2: tl.constexpr):
        """The combining program of a counting pass: per bin edge, the exact count of the tokens above it and bounds
        on their mass (a bin's tokens weigh between 2^-(its upper edge) and 2^-(its lower edge) each; the window's
        exact mass w bounds them from the other side too: above the window, w, less what lies below the edge)."""
        cidx = tl.arange(0, CHUNKS_P2)
        b = tl.arange(0, NB)
        present = cidx < chunks
        tallies = part_tally_ptr + (row * chunks + cidx) * TALLY
        hist = tl.zeros([NB], tl.int32)
        for chunk in range(0, chunks):  # in order (integer sums: any order gives the same)
            hist += tl.load(part_hist_ptr + (row * chunks + chunk) * NB + b, cache_modifier=".cg")
        w = tl.sum(tl.load(tallies + 2, mask=present, other=0.0, cache_modifier=".cg"), axis=0)
        d_min = tl.min(tl.load(tallies + 3, mask=present, other=float("inf"), cache_modifier=".cg"), axis=0)
        d_max = tl.max(tl.load(tallies + 4, mask=present, other=float("-inf"), cache_modifier=".cg"), axis=0)
        if FIRST:  # the first window is every token a filter sees
            z = w
            tl.store(state + S_Z, z)
        else:
            z = tl.load(state + S_Z)
        bin_base = tl.load(state + S_BIN_BASE)
        bin_scale = tl.load(state + S_BIN_SCALE)
        rest = b == NB - 1
        upper = (bin_base + (b + 1).to(tl.float32)) / bin_scale  # exact: integers below 2^24 over a power of two
        cuts = tl.where(rest, d_bot, tl.minimum(tl.maximum(upper, d_top), d_bot))
        lower = tl.maximum((bin_base + b.to(tl.float32)) / bin_scale, d_top)
        n = hist.to(tl.float32)
        each_hi = n * tl.exp2(-lower)
        each_lo = n * tl.exp2(-cuts)  # 0 where the cut is +inf
        below_hi = tl.cumsum(each_hi, axis=0)
        below_lo = tl.cumsum(each_lo, axis=0)
        tail_hi = tl.sum(each_hi, axis=0) - below_hi  # the window's tokens at or below each cut weigh at most this
        tail_lo = tl.sum(each_lo, axis=0) - below_lo
        mass_lo = above_mass + tl.maximum(below_lo * (1.0 - SLACK), w * (1.0 - SLACK) - tail_hi * (1.0 + SLACK))
        mass_hi = above_mass + tl.minimum(below_hi * (1.0 + SLACK), w * (1.0 + SLACK) - tail_lo * (1.0 - SLACK))
        count = above_count + tl.cumsum(hist, axis=0).to(tl.float32)
        _narrow(state, count, mass_lo, mass_hi, cuts, b, z, above_count, above_mass, d_top, d_bot, d_min, d_max, k,
                p, vocab, LAST, RENORMALISED, STRICT, NB, CAP)

    @triton.jit
    def _fold(x, STEP: tl.constexpr, BLOCK: tl.constexpr, HOW: tl.constexpr):
        """x [STEP * BLOCK] folded to [BLOCK] within each thread (element j from x[j], x[j + BLOCK], ..., in that
        order) by its sum, minimum or maximum (HOW)."""
        if STEP == 1:
            return x
        else:
            y = tl.reshape(x, [STEP, BLOCK])
            if HOW == "min":
                return tl.min(y, axis=0)
            elif HOW == "max":
                return tl.max(y, axis=0)
            else:
                return tl.sum(y, axis=0)

    @triton.jit
    def _count_step(d, d_top, d_bot, bin_base, bin_scale, hist, above_n, above_m, window_m, d_min, d_max,
                    NB: tl.constexpr, STEP: tl.constexpr, BLOCK: tl.constexpr):
        """One step of a counting pass: the window's tokens among depths d [STEP * BLOCK] into the histogram, and
        the step's STEP tokens a lane folded into the lane's tallies (within a thread)."""
        mass = tl.exp2(-d)
        inside = (d >= d_top) & (d < d_bot)
        # the bin: floor(d * 2^e) - base, exact (a power-of-two scale, so d * 2^e is exact, and integers below
        # 2^24: the difference is exact and truncates as floor where it is >= 0); the deep rest in the last one.
        # (Tokens outside the window get any bin: the mask drops them.)
        bins = tl.minimum(tl.maximum(d * bin_scale - bin_base, 0.0), NB - 1).to(tl.int32)
        hist += tl.histogram(bins, NB, mask=inside)
        shallow = d < d_top
        above_n += _fold(shallow.to(tl.int32), STEP, BLOCK, "sum")
        above_m += _fold(tl.where(shallow, mass, 0.0), STEP, BLOCK, "sum")
        window_m += _fold(tl.where(inside, mass, 0.0), STEP, BLOCK, "sum")
        d_min = tl.minimum(d_min, _fold(tl.where(inside, d, float("inf")), STEP, BLOCK, "min"))
        d_max = tl.maximum(d_max, _fold(tl.where(inside, d, float("-inf")), STEP, BLOCK, "max"))
        return hist, above_n, above_m, window_m, d_min, d_max

    @triton.jit
    def _store_above(tallies, above_n, above_m):
        """A program's count and mass of the tokens above the window (per lane), as its first two tallies."""
        tl.store(tallies, tl.sum(above_n, axis=0).to(tl.float32))
        tl.store(tallies + 1, tl.sum(above_m, axis=0))

    @triton.jit
    def _above_totals(part_tally_ptr, row, chunks, CHUNKS_P2: tl.constexpr):
        """(count, mass) of the row's tokens above the window: its programs' first two tallies, summed in a fixed
        order (read past the L1 cache, as a launch's combining program must read what its other programs wrote)."""
        idx = tl.arange(0, CHUNKS_P2)
        above = part_tally_ptr + (row * chunks + idx) * TALLY
        return (tl.sum(tl.load(above, mask=idx < chunks, other=0.0, cache_modifier=".cg"), axis=0),
                tl.sum(tl.load(above + 1, mask=idx < chunks, other=0.0, cache_modifier=".cg"), axis=0))

    @triton.jit
    def _search_pass_kernel(logits_ptr, row_stride, top_k_ptr, top_p_ptr, state_ptr, part_hist_ptr, part_tally_ptr,
                            counters_ptr, vocab, tiles_per_program, chunks, FIRST: tl.constexpr, LAST: tl.constexpr,
                            RENORMALISED: tl.constexpr, STRICT: tl.constexpr, NB: tl.constexpr, CAP: tl.constexpr,
                            CHUNKS_P2: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr, STEP: tl.constexpr):
        """A counting pass over each undecided row's window: a histogram of its depths, and the exact count and mass
        of the tokens above it."""
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        state = state_ptr + row * STATE
        if tl.load(state + S_STATUS) == COUNT:
            top = tl.load(state + S_TOP)
            scale = tl.load(state + S_SCALE)
            d_top = tl.load(state + S_DTOP)
            d_bot = tl.load(state + S_DBOT)
            bin_base = tl.load(state + S_BIN_BASE)
            bin_scale = tl.load(state + S_BIN_SCALE)
            base = logits_ptr + row.to(tl.int64) * row_stride
            start = c * tiles_per_program * TILE
            end = tl.minimum(start + tiles_per_program * TILE, vocab)
            tallies = part_tally_ptr + (row * chunks + c) * TALLY
            hist = tl.zeros([NB], tl.int32)
            above_n = tl.zeros([BLOCK], tl.int32)
            above_m = tl.zeros([BLOCK], tl.float32)
            window_m = tl.zeros([BLOCK], tl.float32)
            d_min = tl.full([BLOCK], float("inf"), tl.float32)
            d_max = tl.full([BLOCK], float("-inf"), tl.float32)
            whole = start + (end - start) // (STEP * BLOCK) * (STEP * BLOCK)  # the steps that need no mask
            for block in tl.range(start, whole, STEP * BLOCK, num_stages=3):
                d = _depths(base, block + tl.arange(0, STEP * BLOCK), end, top, scale, False)
                hist, above_n, above_m, window_m, d_min, d_max = _count_step(
                    d, d_top, d_bot, bin_base, bin_scale, hist, above_n, above_m, window_m, d_min, d_max, NB, STEP,
                    BLOCK)
            for block in range(whole, end, STEP * BLOCK):  # the row's last tokens
                d = _depths(base, block + tl.arange(0, STEP * BLOCK), end, top, scale, True)
                hist, above_n, above_m, window_m, d_min, d_max = _count_step(
                    d, d_top, d_bot, bin_base, bin_scale, hist, above_n, above_m, window_m, d_min, d_max, NB, STEP,
                    BLOCK)
            tl.store(part_hist_ptr + (row * chunks + c) * NB + tl.arange(0, NB), hist)
            _store_above(tallies, above_n, above_m)
            tl.store(tallies + 2, tl.sum(window_m, axis=0))
            tl.store(tallies + 3, tl.min(d_min, axis=0))
            tl.store(tallies + 4, tl.max(d_max, axis=0))
            if _last_to_arrive(counters_ptr + row, chunks):
                k = tl.load(top_k_ptr + row).to(tl.int32)
                p = tl.load(top_p_ptr + row).to(tl.float32)
                above_count, above_mass = _above_totals(part_tally_ptr, row, chunks, CHUNKS_P2)
                _decide_from_histogram(part_hist_ptr, part_tally_ptr, state, row, chunks, vocab, k, p, above_count,
                                       above_mass, d_top, d_bot, FIRST, LAST, RENORMALISED, STRICT, NB, CAP, CHUNKS_P2)
