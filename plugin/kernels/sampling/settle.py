"""The race of filtered sampling, which also settles the rows whose search ended on a small window (search.py,
status SETTLE): no pass reads those rows again to find their cut.

A row's search leaves it either DONE (its cut known) or SETTLE: every token above its window [d_top, d_bot) is
kept, every token below it dropped, and the window holds at most `search_candidates` tokens. Such a row's cut lies
in [d_top, d_bot], so a column (race.py: 8 tokens of a tile) without a window token keeps exactly its tokens above
the window whatever the cut. Two launches:

1. the race (grid: rows x the race's chunks, `plan.sample_plan`):
   - DONE rows: the column race of race.py over the tokens with d < cut, combined by the row's last program;
   - SETTLE rows: each program races its columns that hold no window token (their tokens above the window), marks
     the columns that do (a byte a column), and counts and weighs the tokens above the window exactly.
2. the settling (grid: rows): for a SETTLE row, one program gathers the marked columns (at most
   `search_candidates`, in column order; the marks read four to a word, MARK_WORDS words a step: two steps for a
   vocabulary up to 131072), reads their tokens again (8 each), finds the exact cut among the window's tokens
   (`_exact_cut`: on a GPU from the window's depths sorted, in one step; in the interpreter by comparing every
   pair, PAIR_BLOCK tokens a step), scores the marked columns with the cut as the column race would, and picks
   the highest score among those and the race programs' winners. Other rows return at once.

Every column gets the score, noise and in-column race the column race over d < cut gives it, so a row draws the
token it would draw with its cut known before the race (that of temperature_sample over its kept tokens alone), up
to two columns whose scores differ by the rounding of a marked column's mass (its 8 masses may be summed in another
order on a GPU) or tie exactly (the combining program takes the lower token). The exact count and mass above the
window are summed over the race's chunks: their rounding, and so a cut whose top-p target falls within fp32
rounding of a token's mass, may depend on the batch size through the race's geometry.
"""

from __future__ import annotations

from hotfuse.kernels import tl, triton

MARK_WORDS = 2048  # words of column marks (four columns each) the settling program reads a step (108 registers;
#                   4096: 206, one program a multiprocessor)
PAIR_BLOCK = 16    # window tokens compared with all others at once (the interpreter's exact cut)
SETTLE_WARPS = 8

if triton is not None:
    from hotfuse.kernels.sampling.race import _best, _column_log_mass, _column_noise, _column_tiles, \
        _column_token_scores, _combine_race, _depth_noise, _gumbel_from_bits, _last_to_arrive, _row_winner
    from hotfuse.kernels.sampling.search import DONE, S_CUT, S_DBOT, S_DTOP, S_KMASS_HIGH, S_KMASS_LOW, S_LIMIT, \
        S_SCALE, S_STATUS, S_TOP, S_Z, SETTLE, STATE, TALLY, _above_totals, _filters_on, _next_up, _store_above

    @triton.jit
    def _above_each(window_ptr, i, n, d_all, valid_all, mass_all, above_count, above_mass):
        """Window tokens i (of the n in window_ptr): their depths, whether they exist, and the count and mass of the
        tokens strictly above each (those above the window, and the shallower window tokens: a tie group shares
        them)."""
        d = tl.load(window_ptr + i, mask=i < n, other=float("inf"), cache_modifier=".cg")
        shallower = valid_all[None, :] & (d_all[None, :] < d[:, None])
        count = above_count + tl.sum(shallower.to(tl.float32), axis=1)
        above = above_mass + tl.sum(tl.where(shallower, mass_all[None, :], 0.0), axis=1)
        return d, i < n, count, above

    @triton.jit
    def _kept(valid, count, above, kf, k_off, p_off, target, STRICT: tl.constexpr):
        """Whether top-k and top-p keep a window token with count tokens and a mass of above strictly above it."""
        if STRICT:
            kept_p = above < target
        else:
            kept_p = above <= target
        return valid & tl.where(k_off, True, count < kf) & tl.where(p_off, True, kept_p)

    @triton.jit
    def _kept_by_pairs(window_ptr, n, kf, k_off, p_off, p, target, top_k_mass, above_count, above_mass,
                       STRICT: tl.constexpr, CAP: tl.constexpr, BI: tl.constexpr):
        """The deepest kept window token (-inf: none), by comparing every pair: BI window tokens at a time against
        all n, each token's count and mass of strictly shallower tokens (a tie group shares them). Where
        top_k_mass, top-p's target is p times the mass top-k keeps, found first."""
        every = tl.arange(0, CAP)
        valid_all = every < n
        d_all = tl.load(window_ptr + every, mask=valid_all, other=float("inf"), cache_modifier=".cg")
        mass_all = tl.where(valid_all, tl.exp2(-d_all), 0.0)
        if top_k_mass:  # a token stays when fewer than k tokens lie strictly above it
            kept_mass = above_mass
            for b in range(0, tl.cdiv(n, BI)):
                d, valid, count, _above = _above_each(window_ptr, b * BI + tl.arange(0, BI), n, d_all, valid_all,
                                                      mass_all, above_count, above_mass)
                kept_mass += tl.sum(tl.where(valid & (count < kf), tl.exp2(-d), 0.0), axis=0)
            target = p * kept_mass
        deepest = tl.full([], float("-inf"), tl.float32)
        for b in range(0, tl.cdiv(n, BI)):
            d, valid, count, above = _above_each(window_ptr, b * BI + tl.arange(0, BI), n, d_all, valid_all,
                                                 mass_all, above_count, above_mass)
            kept = _kept(valid, count, above, kf, k_off, p_off, target, STRICT)
            deepest = tl.maximum(deepest, tl.max(tl.where(kept, d, float("-inf")), axis=0))
        return deepest

    @triton.jit
    def _kept_by_sort(window_ptr, n, kf, k_off, p_off, p, target, top_k_mass, above_count, above_mass,
                      STRICT: tl.constexpr, CAP: tl.constexpr):
        """_kept_by_pairs' answer in one step, from the window's depths sorted shallowest first: at position i,
        above_count + i tokens and above_mass plus the masses before i lie above the token. Those are a tie
        group's own at its first position only (later positions add the group's earlier members), but the tests
        hold on a prefix of the positions, and a group passes at its first position whenever it passes at any:
        the deepest position that passes holds the deepest token kept."""
        every = tl.arange(0, CAP)
        valid = every < n
        d = tl.sort(tl.load(window_ptr + every, mask=valid, other=float("inf"), cache_modifier=".cg"))
        mass = tl.where(valid, tl.exp2(-d), 0.0)
        if top_k_mass:  # top-k keeps the tokens no deeper than the k-th (its ties included)
            at = kf - above_count - 1.0
            kth = tl.min(tl.where(every.to(tl.float32) >= at, d, float("inf")), axis=0)
            kth = tl.where(at >= 0.0, kth, float("-inf"))
            target = p * (above_mass + tl.sum(tl.where(valid & (d <= kth), mass, 0.0), axis=0))
        above = above_mass + (tl.cumsum(mass, axis=0) - mass)
        kept = _kept(valid, above_count + every.to(tl.float32), above, kf, k_off, p_off, target, STRICT)
        return tl.max(tl.where(kept, d, float("-inf")), axis=0)

    @triton.jit
    def _exact_cut(window_ptr, n, state, vocab, k, p, above_count, above_mass, d_top, RENORMALISED: tl.constexpr,
                   STRICT: tl.constexpr, CAP: tl.constexpr, BI: tl.constexpr, SORTED: tl.constexpr):
        """The exact cut of a row among the n <= CAP depths of its window's tokens (window_ptr, written by this
        program), given the exact count and mass of the tokens above the window: top-k first, then top-p against
        the rule's mass. SORTED: from the depths sorted (GPUs); else by comparing every pair (the interpreter,
        whose sort runs slowly in Python). Stored in the row's state (DONE) and returned."""
        kf, k_on, k_off, p_on, p_off = _filters_on(k, p, vocab)
        target = p * tl.load(state + S_Z)
        top_k_mass = tl.zeros([], tl.int1)
        if RENORMALISED:  # top-p weighs against top-k's mass: found here unless known already (then the window may
            #               lie above top-k's threshold)
            kept_mass = tl.load(state + S_KMASS_LOW)
            target = tl.where(k_on, p * kept_mass, target)
            top_k_mass = k_on & (kept_mass != tl.load(state + S_KMASS_HIGH))
        if SORTED:
            deepest = _kept_by_sort(window_ptr, n, kf, k_off, p_off, p, target, top_k_mass, above_count, above_mass,
                                    STRICT, CAP)
        else:
            deepest = _kept_by_pairs(window_ptr, n, kf, k_off, p_off, p, target, top_k_mass, above_count, above_mass,
                                     STRICT, CAP, BI)
        cut = tl.where(deepest > float("-inf"), _next_up(tl.maximum(deepest, 0.0)), d_top)
        cut = tl.minimum(cut, tl.load(state + S_LIMIT))
        tl.store(state + S_CUT, cut)
        tl.store(state + S_STATUS, DONE)
        return cut

    @triton.jit
    def _window_tile(base, tile, vocab, scale, seed, top, d_top, d_bot, best, best_col, above_n, above_m, marks,
                     DEPTH: tl.constexpr, LANES: tl.constexpr, GPU: tl.constexpr, MASKED: tl.constexpr):
        """One tile of a SETTLE row: its columns without a window token race (their tokens above the window), the
        others are marked, and the tokens above the window are counted and weighed per lane."""
        lane = tl.arange(0, LANES)
        tokens = tile * (DEPTH * LANES) + tl.arange(0, DEPTH)[:, None] * LANES + lane[None, :]
        if MASKED:
            x = tl.load(base + tokens, mask=tokens < vocab, other=float("-inf")).to(tl.float32)
        else:  # a whole tile inside the row
            x = tl.load(base + tokens).to(tl.float32)
        d = (top - x) * scale  # as search.py computes it; NaN: NaN (neither above nor inside the window)
        above = d < d_top
        window = (d >= d_top) & (d < d_bot)
        marked = tl.max(window.to(tl.int32), axis=0)
        tl.store(marks + tile * LANES + lane, marked.to(tl.int8))
        # each column's tokens above the window: log2 of their mass races where the column holds no window token;
        # their mass against the row's top is 2^(m - top * scale) times the column's mass against its own largest
        # m (one exp2 a column, where exp2(-d) a token would take eight)
        log_mass, mass = _column_log_mass(tl.where(above, x, float("-inf")), scale, 0, GPU)
        score = tl.where(marked == 0, log_mass + _column_noise(seed, tile, LANES, GPU), float("-inf"))
        better = score > best  # strict: on ties a lane keeps its earlier column
        best = tl.where(better, score, best)
        best_col = tl.where(better, tile * LANES + lane, best_col)
        above_n += tl.sum(above.to(tl.int32), axis=0)
        m = tl.max(tl.where(above, x, float("-inf")), axis=0)
        above_m += tl.where(mass > 0.0, tl.exp2(tl.where(mass > 0.0, m, top) * scale - top * scale) * mass, 0.0)
        return best, best_col, above_n, above_m

    @triton.jit(do_not_specialize=["tiles_per_program", "chunks"])
    def _race_window_kernel(logits_ptr, row_stride, temp_ptr, seed_ptr, state_ptr, part_score_ptr, part_index_ptr,
                            part_tally_ptr, marks_ptr, counters_ptr, out_ptr, vocab, tiles, tiles_per_program, chunks,
                            CHUNKS_P2: tl.constexpr, DEPTH: tl.constexpr, LANES: tl.constexpr, GPU: tl.constexpr):
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        state = state_ptr + row * STATE
        status = tl.load(state + S_STATUS)
        if (status == DONE) | (status == SETTLE):
            top = tl.load(state + S_TOP)
            scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)  # (as race.py and search.py)
            seed = tl.load(seed_ptr + row)
            base = logits_ptr + row.to(tl.int64) * row_stride
            first = c * tiles_per_program
            last = tl.minimum(first + tiles_per_program, tiles)
            token_noise = _depth_noise(seed, DEPTH, GPU)
            if status == DONE:
                cut = tl.load(state + S_CUT)
                best, best_col, _nan = _column_tiles(base, first, last, vocab, scale, seed, DEPTH, LANES, GPU, False,
                                                     top, cut, True)
            else:
                cut = tl.load(state + S_DTOP)  # the columns raced here keep their tokens above the window
                d_bot = tl.load(state + S_DBOT)
                marks = marks_ptr + row.to(tl.int64) * tiles * LANES
                best = tl.full([LANES], float("-inf"), tl.float32)
                best_col = tl.full([LANES], 0, tl.int32)
                above_n = tl.zeros([LANES], tl.int32)
                above_m = tl.zeros([LANES], tl.float32)
                full = tl.minimum(last, vocab // (DEPTH * LANES))  # whole tiles load without a mask
                for tile in range(first, full):
                    best, best_col, above_n, above_m = _window_tile(base, tile, vocab, scale, seed, top, cut, d_bot,
                                                                    best, best_col, above_n, above_m, marks, DEPTH,
                                                                    LANES, GPU, False)
                if full < last:
                    best, best_col, above_n, above_m = _window_tile(base, full, vocab, scale, seed, top, cut, d_bot,
                                                                    best, best_col, above_n, above_m, marks, DEPTH,
                                                                    LANES, GPU, True)
                _store_above(part_tally_ptr + (row * chunks + c) * TALLY, above_n, above_m)
            winner, col = _best(best, best_col, 0, GPU)
            s, tokens = _column_token_scores(base, col, tl.arange(0, DEPTH), vocab, scale, token_noise, DEPTH, LANES,
                                             top, cut, True)
            _s, choice = _best(s, tokens, 0, GPU)
            tl.store(part_score_ptr + row * chunks + c, winner)
            tl.store(part_index_ptr + row * chunks + c, choice)
            if status == DONE:  # (a SETTLE row is combined by the settling launch)
                if _last_to_arrive(counters_ptr + row, chunks):
                    _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2, True)

    @triton.jit
    def _settle_kernel(logits_ptr, row_stride, seed_ptr, top_k_ptr, top_p_ptr, state_ptr, part_score_ptr,
                       part_index_ptr, part_tally_ptr, mark_words_ptr, columns_ptr, window_ptr, out_ptr, vocab,
                       tiles, chunks, RENORMALISED: tl.constexpr, STRICT: tl.constexpr, CAP: tl.constexpr,
                       CHUNKS_P2: tl.constexpr, BI: tl.constexpr, DEPTH: tl.constexpr, LANES: tl.constexpr,
                       MARK_WORDS: tl.constexpr, GPU: tl.constexpr):
        row = tl.program_id(0)
        state = state_ptr + row * STATE
        if tl.load(state + S_STATUS) == SETTLE:
            top = tl.load(state + S_TOP)
            scale = tl.load(state + S_SCALE)
            d_top = tl.load(state + S_DTOP)
            d_bot = tl.load(state + S_DBOT)
            seed = tl.load(seed_ptr + row)
            k = tl.load(top_k_ptr + row).to(tl.int32)
            p = tl.load(top_p_ptr + row).to(tl.float32)
            base = logits_ptr + row.to(tl.int64) * row_stride
            above_count, above_mass = _above_totals(part_tally_ptr, row, chunks, CHUNKS_P2)
            winner, token = _row_winner(part_score_ptr, part_index_ptr, row, chunks, CHUNKS_P2, False)
            # the marked columns, in column order: the marks (a byte a column, 0 or 1) read as words of four
            words = tiles * (LANES // 4)
            mark_words = mark_words_ptr + row.to(tl.int64) * words
            columns = columns_ptr + row * CAP
            found = tl.zeros([], tl.int32)
            for block in range(0, words, MARK_WORDS):
                at = block + tl.arange(0, MARK_WORDS)
                word = tl.load(mark_words + at, mask=at < words, other=0)
                marked = (word & 1) + ((word >> 8) & 1) + ((word >> 16) & 1) + ((word >> 24) & 1)
                slot = found + tl.cumsum(marked, axis=0) - marked  # the word's first column's slot
                for byte in tl.static_range(4):
                    mark = (word >> (8 * byte)) & 1
                    tl.store(columns + slot, 4 * at + byte, mask=(mark > 0) & (slot < CAP))
                    slot += mark
                found += tl.sum(marked, axis=0)
            tl.debug_barrier()
            i = tl.arange(0, CAP)
            valid = i < found
            col = tl.load(columns + i, mask=valid, other=0)
            members = ((col // LANES) * (DEPTH * LANES) + (col % LANES))[:, None] + tl.arange(0, DEPTH)[None, :] * LANES
            x = tl.load(base + members, mask=valid[:, None] & (members < vocab), other=float("-inf")).to(tl.float32)
            d = (top - x) * scale
            window = tl.reshape((d >= d_top) & (d < d_bot), [CAP * DEPTH])
            # the window's depths, dense, for the exact cut
            slot = tl.cumsum(window.to(tl.int32), axis=0) - 1
            tl.store(window_ptr + row * CAP + slot, tl.reshape(d, [CAP * DEPTH]), mask=window & (slot < CAP))
            tl.debug_barrier()
            cut = _exact_cut(window_ptr + row * CAP, tl.sum(window.to(tl.int32), axis=0), state, vocab, k, p,
                             above_count, above_mass, d_top, RENORMALISED, STRICT, CAP, BI, GPU)
            # the marked columns scored with the cut, as the column race scores a column
            kept = tl.where(cut == float("inf"), x == x, d < cut)
            log_mass, _mass = _column_log_mass(tl.where(kept, x, float("-inf")), scale, 1, GPU)
            r0, r1, r2, r3 = tl.randint4x(seed, col // 4, 7)  # the column race's noise: column 4q + i gets r_i
            which = col % 4
            bits = tl.where(which == 0, r0, tl.where(which == 1, r1, tl.where(which == 2, r2, r3)))
            score = tl.where(valid, log_mass + _gumbel_from_bits(bits, GPU), float("-inf"))
            w_score, w_col = _best(score, col, 0, GPU)
            token_noise = _depth_noise(seed, DEPTH, GPU)
            s, tokens = _column_token_scores(base, w_col, tl.arange(0, DEPTH), vocab, scale, token_noise, DEPTH, LANES,
                                             top, cut, True)
            _s, w_token = _best(s, tokens, 0, GPU)
            if (w_score > winner) | ((w_score == winner) & (w_token < token)):
                token = w_token
            tl.store(out_ptr + row, token.to(tl.int64))
