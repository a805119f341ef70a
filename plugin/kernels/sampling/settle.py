"""The race of filtered sampling that also settles the rows whose search ended on a small window (search.py, status
COPY), so that no pass reads those rows only to copy their window.

A row's search leaves it either DONE (its cut known) or COPY: every token above its window [d_top, d_bot) is kept,
every token below it dropped, and the window holds at most `search_candidates` tokens. Such a row's cut lies in
[d_top, d_bot], so a column (race.py: 8 tokens of a tile) without a window token keeps exactly its tokens above the
window whatever the cut. Two launches:

1. the race (grid: rows x the race's chunks, `plan.sample_plan`):
   - DONE rows: the column race of race.py over the tokens with d < cut, combined by the row's last program;
   - COPY rows: each program races its columns that hold no window token (their tokens above the window), marks the
     columns that do (a byte a column), and counts and weighs the tokens above the window exactly, as search.py's
     copying pass did.
2. the settling (grid: rows): for a COPY row, one program gathers the marked columns (at most `search_candidates`,
   in column order), reads their tokens again (8 each), finds the exact cut among the window's tokens
   (search._decide_from_candidates), scores the marked columns with the cut as the column race would, and picks the
   highest score among those and the race programs' winners. Other rows return at once.

Every column gets the score, noise and in-column race the column race over d < cut gives it, so a row draws the
token it would draw with its cut known before the race, up to two columns whose scores differ by the rounding of a
marked column's mass (its 8 masses may be summed in another order on a GPU) or tie exactly (the combining program
takes the lower token). The exact count and mass above the window are summed over the race's chunks, where the
copying pass summed them over its own: the cut can differ only where a top-p target falls within fp32 rounding of
a candidate's mass, as between two geometries of the passes.
"""

from __future__ import annotations

from hotfuse.kernels import tl, triton

MARK_BLOCK = 2048  # column marks the settling program reads a step
SETTLE_WARPS = 8

if triton is not None:
    from hotfuse.kernels.sampling.race import _best, _column_log_mass, _column_noise, _column_tiles, \
        _column_token_scores, _combine_race, _depth_noise, _gumbel_from_bits, _last_to_arrive, _row_winner
    from hotfuse.kernels.sampling.search import COPY, DONE, S_CUT, S_DBOT, S_DTOP, S_SCALE, S_STATUS, S_TOP, STATE, \
        TALLY, _decide_from_candidates

    @triton.jit
    def _window_tile(base, tile, vocab, scale, seed, top, d_top, d_bot, best, best_col, above_n, above_m, marks,
                     DEPTH: tl.constexpr, LANES: tl.constexpr, GPU: tl.constexpr):
        """One tile of a COPY row: its columns without a window token race (their tokens above the window), the
        others are marked, and the tokens above the window are counted and weighed per lane."""
        lane = tl.arange(0, LANES)
        tokens = tile * (DEPTH * LANES) + tl.arange(0, DEPTH)[:, None] * LANES + lane[None, :]
        x = tl.load(base + tokens, mask=tokens < vocab, other=float("-inf")).to(tl.float32)
        d = (top - x) * scale  # as search.py computes it; NaN: NaN (neither above nor inside the window)
        above = d < d_top
        window = (d >= d_top) & (d < d_bot)
        marked = tl.max(window.to(tl.int32), axis=0)
        tl.store(marks + tile * LANES + lane, marked.to(tl.int8))
        log_mass, _mass = _column_log_mass(tl.where(above & (marked == 0)[None, :], x, float("-inf")), scale, 0, GPU)
        score = log_mass + _column_noise(seed, tile, LANES, GPU)
        better = score > best  # strict: on ties a lane keeps its earlier column
        best = tl.where(better, score, best)
        best_col = tl.where(better, tile * LANES + lane, best_col)
        above_n += tl.sum(above.to(tl.int32), axis=0)
        above_m += tl.sum(tl.where(above, tl.exp2(-d), 0.0), axis=0)
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
        if (status == DONE) | (status == COPY):
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
                for tile in range(first, last):
                    best, best_col, above_n, above_m = _window_tile(base, tile, vocab, scale, seed, top, cut, d_bot,
                                                                    best, best_col, above_n, above_m, marks, DEPTH,
                                                                    LANES, GPU)
                tallies = part_tally_ptr + (row * chunks + c) * TALLY
                tl.store(tallies, tl.sum(above_n, axis=0).to(tl.float32))
                tl.store(tallies + 1, tl.sum(above_m, axis=0))
            winner, col = _best(best, best_col, 0, GPU)
            s, tokens = _column_token_scores(base, col, tl.arange(0, DEPTH), vocab, scale, token_noise, DEPTH, LANES,
                                             top, cut, True)
            _s, choice = _best(s, tokens, 0, GPU)
            tl.store(part_score_ptr + row * chunks + c, winner)
            tl.store(part_index_ptr + row * chunks + c, choice)
            if status == DONE:  # (a COPY row is combined by the settling launch)
                if _last_to_arrive(counters_ptr + row, chunks):
                    _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2, True)

    @triton.jit
    def _settle_kernel(logits_ptr, row_stride, seed_ptr, top_k_ptr, top_p_ptr, state_ptr, part_score_ptr,
                       part_index_ptr, part_tally_ptr, marks_ptr, columns_ptr, buffer_ptr, copied_ptr, out_ptr, vocab,
                       tiles, chunks, RENORMALISED: tl.constexpr, STRICT: tl.constexpr, CAP: tl.constexpr,
                       CHUNKS_P2: tl.constexpr, BI: tl.constexpr, DEPTH: tl.constexpr, LANES: tl.constexpr,
                       MARK_BLOCK: tl.constexpr, GPU: tl.constexpr):
        row = tl.program_id(0)
        state = state_ptr + row * STATE
        if tl.load(state + S_STATUS) == COPY:
            top = tl.load(state + S_TOP)
            scale = tl.load(state + S_SCALE)
            d_top = tl.load(state + S_DTOP)
            d_bot = tl.load(state + S_DBOT)
            seed = tl.load(seed_ptr + row)
            k = tl.load(top_k_ptr + row).to(tl.int32)
            p = tl.load(top_p_ptr + row).to(tl.float32)
            base = logits_ptr + row.to(tl.int64) * row_stride
            idx = tl.arange(0, CHUNKS_P2)
            present = idx < chunks
            tallies = part_tally_ptr + (row * chunks + idx) * TALLY
            above_count = tl.sum(tl.load(tallies, mask=present, other=0.0), axis=0)
            above_mass = tl.sum(tl.load(tallies + 1, mask=present, other=0.0), axis=0)
            winner, token = _row_winner(part_score_ptr, part_index_ptr, row, chunks, CHUNKS_P2, False)
            # the marked columns, in column order
            marks = marks_ptr + row.to(tl.int64) * tiles * LANES
            columns = columns_ptr + row * CAP
            found = tl.zeros([], tl.int32)
            for block in range(0, tiles * LANES, MARK_BLOCK):
                at = block + tl.arange(0, MARK_BLOCK)
                marked = tl.load(marks + at, mask=at < tiles * LANES, other=0).to(tl.int32)
                n = tl.sum(marked, axis=0)
                if n > 0:
                    slot = found + tl.cumsum(marked, axis=0) - 1
                    tl.store(columns + slot, at, mask=(marked > 0) & (slot < CAP))
                found += n
            tl.debug_barrier()
            i = tl.arange(0, CAP)
            valid = i < found
            col = tl.load(columns + i, mask=valid, other=0)
            members = ((col // LANES) * (DEPTH * LANES) + (col % LANES))[:, None] + tl.arange(0, DEPTH)[None, :] * LANES
            x = tl.load(base + members, mask=valid[:, None] & (members < vocab), other=float("-inf")).to(tl.float32)
            d = (top - x) * scale
            window = tl.reshape((d >= d_top) & (d < d_bot), [CAP * DEPTH])
            # the window's depths, dense, for the exact cut (search.py's copying pass wrote them per chunk)
            slot = tl.cumsum(window.to(tl.int32), axis=0) - 1
            tl.store(buffer_ptr + row * CAP + slot, tl.reshape(d, [CAP * DEPTH]), mask=window & (slot < CAP))
            tl.store(copied_ptr + row, tl.sum(window.to(tl.int32), axis=0))
            tl.debug_barrier()
            cut = _decide_from_candidates(copied_ptr, buffer_ptr, state, row, 1, vocab, k, p, above_count,
                                          above_mass, d_top, RENORMALISED, STRICT, CAP, 2, BI)
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
