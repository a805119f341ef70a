"""The temperature + sample kernels and their launch: one token per row, an exact sample of softmax(logits / t),
reading the logits once and writing no probabilities. Noise from Philox4x32-7 keyed by the row's seed.

- A column race in one launch. A row is cut into tiles of 4096 tokens, and a tile into 512 columns of 8 tokens
  (token j of a tile sits in column j % 512). Each column races with its log-mass plus one Gumbel draw, so a
  column wins with probability (its mass / row mass); inside the winning column a second race over its 8 tokens,
  with 8 draws of its own, picks the token. The product of the two is exactly softmax(x / t). (Those 8 draws are
  keyed by depth and shared by all columns of the row: only the winning column's race is ever used, and the
  column race never sees them.) Per token that is a max, an FMA, an exponential and an add: no per-token noise.
- Each program takes 1-4 tiles of a row, keeps its best column, draws that column's token and publishes
  (column score, token); the row's last program to finish (an arrival counter) picks the highest score in a fixed
  order. The column layout and the noise counters do not depend on the batch or the launch geometry: a row's token
  depends only on its logits, its temperature and its seed.
- A NaN logit is never drawn: a program that meets one redoes its tiles treating NaN as masked.
- The same race by a thread-block cluster (Hopper and later) where the plan takes it (`plan.cluster_race_geometry`):
  sixteen CTAs take two tiles of a row each and exchange their winners through distributed shared memory
  (hotfuse.kernels.cluster) instead of the arrival counter; the noise and tie rules are the column race's, so it
  draws the same tokens.

The partial pass keeps no probabilities; arrival counters live in a zeroed per-(device, stream) workspace that
every kernel leaves at zero again, so no launch pays for a memset. No atomics in reductions (the arrival counter
only elects the combining program); no host synchronisation (the kernels capture in CUDA graphs).

Should the cluster race or a dependent launch fail to build or launch here, the failure is recorded in
hotfuse.kernels.KERNEL_FAILURES and the column race (or a plain launch) answers this call and every later one.
Inputs are not checked here: `hotfuse.kernels.sampling` does that.
"""

from __future__ import annotations

import math

import torch

from hotfuse.kernels import KERNEL_FAILURES, tl, triton
from hotfuse.kernels.cluster import cluster_arrive, cluster_wait, exchange_init, pull_pairs, push_pair
from hotfuse.kernels.sampling.plan import CLUSTER_RACE, COLUMN_DEPTH, COLUMN_LANES, DEPENDENT_LAUNCH, SAMPLE_WARPS, \
    Tuning, cluster_race_geometry, dependency_flags, grid_dependency_control, sample_plan

if triton is not None:
    from triton.language.extra import libdevice

    @triton.jit
    def _log2(x, GPU: tl.constexpr):
        if GPU:
            return libdevice.fast_log2f(x)
        else:
            return tl.log2(x)

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
    def _higher_score_lower_index(score_a, index_a, score_b, index_b):
        a_wins = (score_a > score_b) | ((score_a == score_b) & (index_a < index_b))
        return tl.where(a_wins, score_a, score_b), tl.where(a_wins, index_a, index_b)

    @triton.jit
    def _best(score, index, AXIS: tl.constexpr, ONE_PASS: tl.constexpr):
        """(highest score, lowest index among equals) along AXIS: one reduction over (score, index) pairs, or
        two vectorised ones (faster in the interpreter, which runs a combine function in Python)."""
        if ONE_PASS:
            return tl.reduce((score, index), AXIS, _higher_score_lower_index)
        else:
            top = tl.max(score, axis=AXIS)
            return top, tl.min(tl.where(score == tl.expand_dims(top, AXIS), index, 2147483647), axis=AXIS)

    @triton.jit
    def _column_log_mass(x, scale, AXIS: tl.constexpr, GPU: tl.constexpr):
        """Per column of x (its tokens along AXIS): log2 of the column's mass, the sum of 2^(x * scale), taken
        against the column's own maximum (FMA of the exact x * scale, so the rounding of that maximum cancels
        out); an all -inf column gives -inf. Also the mass (NaN where the column holds a NaN)."""
        m = tl.max(x, axis=AXIS)
        m_scaled = tl.where(m == float("-inf"), 0.0, m) * scale
        mass = tl.sum(tl.exp2(x * scale - tl.expand_dims(m_scaled, AXIS)), axis=AXIS)
        return m_scaled + _log2(mass, GPU), mass

    @triton.jit
    def _depth_noise(seed, DEPTH: tl.constexpr, GPU: tl.constexpr):
        """The noise of the race inside a column, one draw per depth (counters from 2^30 up: disjoint from the
        column counters). Every column of the row shares these draws: only the winning column's race is ever
        used, and the column race never sees them, so that token is exact."""
        bits, _r1, _r2, _r3 = tl.randint4x(seed, tl.arange(0, DEPTH) + (1 << 30), 7)
        return _gumbel_from_bits(bits, GPU)

    @triton.jit
    def _within_cut(x, top, scale, cut):
        """Filtered sampling (search.py): the tokens a row keeps, depth (top - x) * scale below the cut (an
        infinite cut: every token but NaN)."""
        return tl.where(cut == float("inf"), x == x, (top - x) * scale < cut)  # (NaN: never below a cut)

    @triton.jit
    def _column_token_scores(base, col, depth, vocab, scale, token_noise, DEPTH: tl.constexpr, LANES: tl.constexpr,
                             top, cut, FILTERED: tl.constexpr):
        """The race inside column col: its tokens (depth runs along them) and their scores, x * scale plus the
        per-depth noise; tokens past the vocabulary and NaN logits (and, FILTERED, tokens at or past the cut) score
        -inf. col, depth and token_noise come shaped to broadcast together."""
        tokens = (col // LANES) * (DEPTH * LANES) + depth * LANES + col % LANES
        in_vocab = tokens < vocab
        x = tl.load(base + tokens, mask=in_vocab, other=float("-inf")).to(tl.float32)
        keep = in_vocab & (x == x)
        if FILTERED:
            keep = keep & _within_cut(x, top, scale, cut)
        return tl.where(keep, x * scale + token_noise, float("-inf")), tokens

    @triton.jit
    def _column_noise(seed, tile, LANES: tl.constexpr, GPU: tl.constexpr):
        """Gumbel noise for the tile's LANES columns: one Philox4x32-7 call per four adjacent columns (seven
        rounds pass BigCrush, Salmon et al. 2011; curand's ten are a safety margin). Counters: the column's
        index in the row."""
        quad = tile * (LANES // 4) + tl.arange(0, LANES // 4)
        r0, r1, r2, r3 = tl.randint4x(seed, quad, 7)
        bits = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), [LANES])  # column 4q + i gets r_i
        return _gumbel_from_bits(bits, GPU)

    @triton.jit
    def _column_tile(base, tile, vocab, scale, seed, best, best_col, DEPTH: tl.constexpr, LANES: tl.constexpr,
                     GPU: tl.constexpr, MASKED: tl.constexpr, NAN_AS_MASKED: tl.constexpr, top, cut,
                     FILTERED: tl.constexpr):
        """Race the tile's columns into the running per-lane best (score, column). A column's score is
        log2 of its mass plus Gumbel noise. Also returns which columns met a NaN (their mass is NaN unless
        NAN_AS_MASKED)."""
        lane = tl.arange(0, LANES)
        cols = tile * (DEPTH * LANES) + tl.arange(0, DEPTH)[:, None] * LANES + lane[None, :]
        if MASKED:
            x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
        else:
            x = tl.load(base + cols).to(tl.float32)
        if NAN_AS_MASKED:
            x = tl.where(x == x, x, float("-inf"))
        if FILTERED:
            x = tl.where(_within_cut(x, top, scale, cut), x, float("-inf"))
        log_mass, mass = _column_log_mass(x, scale, 0, GPU)
        score = log_mass + _column_noise(seed, tile, LANES, GPU)
        better = score > best  # strict: on ties a lane keeps its earlier column
        return tl.where(better, score, best), tl.where(better, tile * LANES + lane, best_col), mass != mass

    @triton.jit
    def _column_tiles(base, first, last, vocab, scale, seed, DEPTH: tl.constexpr, LANES: tl.constexpr,
                      GPU: tl.constexpr, NAN_AS_MASKED: tl.constexpr, top, cut, FILTERED: tl.constexpr):
        best = tl.full([LANES], float("-inf"), tl.float32)
        best_col = tl.full([LANES], 0, tl.int32)
        nan = tl.zeros([LANES], tl.int1)
        full = tl.minimum(last, vocab // (DEPTH * LANES))  # whole tiles load without a mask
        for tile in range(first, full):
            best, best_col, n = _column_tile(base, tile, vocab, scale, seed, best, best_col, DEPTH, LANES, GPU,
                                             False, NAN_AS_MASKED, top, cut, FILTERED)
            nan |= n
        if full < last:
            best, best_col, n = _column_tile(base, full, vocab, scale, seed, best, best_col, DEPTH, LANES, GPU,
                                             True, NAN_AS_MASKED, top, cut, FILTERED)
            nan |= n
        return best, best_col, nan

    @triton.jit(do_not_specialize=["tiles_per_program", "chunks"])
    def _sample_column_race_kernel(logits_ptr, row_stride, temp_ptr, seed_ptr, part_score_ptr, part_index_ptr,
                                   counters_ptr, out_ptr, vocab, tiles, tiles_per_program, chunks,
                                   DEPTH: tl.constexpr, LANES: tl.constexpr, GPU: tl.constexpr,
                                   COMBINE_HERE: tl.constexpr, CHUNKS_P2: tl.constexpr, WAIT: tl.constexpr,
                                   TRIGGER: tl.constexpr):
        # Logits are scaled to base 2 (x log2(e) / t), so log2 masses and base-2 Gumbel noise race as
        # natural-log ones would.
        if WAIT:
            tl.extra.cuda.gdc_wait()
        if TRIGGER:
            tl.extra.cuda.gdc_launch_dependents()
        pid = tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        top = tl.zeros([], tl.float32)  # every token races (filtered sampling's race, settle.py, passes a cut)
        cut = tl.full([], float("inf"), tl.float32)
        scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)
        seed = tl.load(seed_ptr + row)
        base = logits_ptr + row.to(tl.int64) * row_stride
        first = c * tiles_per_program
        last = tl.minimum(first + tiles_per_program, tiles)
        token_noise = _depth_noise(seed, DEPTH, GPU)  # drawn first, off the critical path
        best, best_col, nan = _column_tiles(base, first, last, vocab, scale, seed, DEPTH, LANES, GPU, False, top, cut,
                                            False)
        if tl.max(nan.to(tl.int32), axis=0) > 0:  # rare: a NaN logit; redo these tiles with NaN as masked
            best, best_col, nan = _column_tiles(base, first, last, vocab, scale, seed, DEPTH, LANES, GPU, True, top,
                                                cut, False)
        winner, col = _best(best, best_col, 0, GPU)
        # An all -inf chunk ends on its first column's first token, with score -inf.
        s, tokens = _column_token_scores(base, col, tl.arange(0, DEPTH), vocab, scale, token_noise, DEPTH, LANES, top,
                                         cut, False)
        _s, choice = _best(s, tokens, 0, GPU)
        tl.store(part_score_ptr + row * chunks + c, winner)
        tl.store(part_index_ptr + row * chunks + c, choice)
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
        _score, choice = _row_winner(part_score_ptr, part_index_ptr, row, chunks, CHUNKS_P2, COHERENT)
        tl.store(out_ptr + row, choice.to(tl.int64))

    @triton.jit
    def _row_winner(part_score_ptr, part_index_ptr, row, chunks, CHUNKS_P2: tl.constexpr, COHERENT: tl.constexpr):
        """(score, token) of the row's winner: a fixed-order read of its programs' partial winners, the highest
        score, then the lowest token."""
        idx = tl.arange(0, CHUNKS_P2)
        if COHERENT:  # written by other programs of this launch: read past the L1 cache
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"),
                            cache_modifier=".cg")
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647,
                            cache_modifier=".cg")
        else:
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647)
        return _best(score, index, 0, False)

    @triton.jit
    def _sample_race_combine_kernel(part_score_ptr, part_index_ptr, out_ptr, chunks, CHUNKS_P2: tl.constexpr,
                                    WAIT: tl.constexpr):
        row = tl.program_id(0)
        if WAIT:
            tl.extra.cuda.gdc_wait()
        _combine_race(part_score_ptr, part_index_ptr, out_ptr, row, chunks, CHUNKS_P2, False)

    @triton.jit
    def _sample_cluster_kernel(logits_ptr, row_stride, temp_ptr, seed_ptr, out_ptr, vocab,
                               CTAS: tl.constexpr, TILES: tl.constexpr, DEPTH: tl.constexpr, LANES: tl.constexpr,
                               GPU: tl.constexpr, WAIT: tl.constexpr):
        # The column race of one row by a thread-block cluster (Hopper, launched with num_ctas=CTAS): CTA r races
        # tiles r*TILES .. r*TILES+TILES-1 ([CTAS, DEPTH, LANES] tiles, one slice per CTA), picks its winning
        # column's token, and pushes (column score, token) to every CTA through the softmax's mbarrier exchange;
        # CTA 0 writes the row's winner. The same scores, noise and tie rules as the column race kernel, so the
        # same tokens; no arrival counter and no second read of partials from global memory.
        tl.static_assert(CTAS <= 16)
        row = tl.program_id(0)
        if GPU:
            ready = exchange_init(row, CTAS)
        if WAIT:
            tl.extra.cuda.gdc_wait()
        scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)
        seed = tl.load(seed_ptr + row)
        base = logits_ptr + row.to(tl.int64) * row_stride
        span = tl.arange(0, CTAS)
        depth = tl.arange(0, DEPTH)
        lane = tl.arange(0, LANES)
        token_noise = _depth_noise(seed, DEPTH, GPU)
        best = tl.full([CTAS, LANES], float("-inf"), tl.float32)
        best_col = tl.full([CTAS, LANES], 0, tl.int32)
        for i in tl.static_range(TILES):
            tile = span * TILES + i
            cols = tile[:, None, None] * (DEPTH * LANES) + depth[None, :, None] * LANES + lane[None, None, :]
            x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
            if GPU:  # NaN: masked (max.f32 returns the other operand when one is NaN: one instruction)
                x = tl.maximum(x, float("-inf"))
            else:  # the interpreter's maximum propagates NaN
                x = tl.where(x == x, x, float("-inf"))
            log_mass, _mass = _column_log_mass(x, scale, 1, GPU)
            quad = tile[:, None] * (LANES // 4) + tl.arange(0, LANES // 4)[None, :]
            r0, r1, r2, r3 = tl.randint4x(seed, quad, 7)
            # column 4q + i gets r_i (a where-chain: Triton 3.6 cannot lay out join + reshape across CTAs)
            which = tl.arange(0, 4)[None, None, :]
            bits = tl.where(which == 0, r0[:, :, None], tl.where(which == 1, r1[:, :, None],
                                                                 tl.where(which == 2, r2[:, :, None], r3[:, :, None])))
            bits = tl.reshape(bits, [CTAS, LANES])
            noise = _gumbel_from_bits(bits, GPU)
            score = log_mass + noise
            better = score > best
            best = tl.where(better, score, best)
            best_col = tl.where(better, tile[:, None] * LANES + lane[None, :], best_col)
        top, col = _best(best, best_col, 1, False)
        s, tokens = _column_token_scores(base, col[:, None], depth[None, :], vocab, scale, token_noise[None, :],
                                         DEPTH, LANES, tl.zeros([], tl.float32), tl.full([], float("inf"), tl.float32),
                                         False)
        _s, choice = _best(s, tokens, 1, False)
        if GPU:
            pushed = push_pair(top, choice.to(tl.float32, bitcast=True), ready + 0 * span, CTAS)
            scores, picks = pull_pairs(tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None])
            picks = picks.to(tl.int32, bitcast=True)
            received = cluster_arrive(row)
        else:
            scores = tl.broadcast_to(top[None, :], [CTAS, CTAS])
            picks = tl.broadcast_to(choice[None, :], [CTAS, CTAS])
        _winner, token = _best(scores, picks, 1, False)
        tl.store(out_ptr + row + 0 * span, token.to(tl.int64), mask=span == 0)
        if GPU:
            cluster_wait(received)


_WORKSPACES: dict[tuple[int, int], torch.Tensor] = {}
_ALL_WORKSPACES: list[torch.Tensor] = []  # never freed: CUDA graphs may have captured their addresses


def _stream_key(device: torch.device) -> tuple[int, int]:
    """(device index, current stream): the key of a workspace that kernels on one stream share."""
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    return device.index if device.index is not None else -1, stream


def zeroed_counters(device: torch.device, n: int) -> torch.Tensor:
    """int32 arrival counters that are zero before and after every kernel that uses them.

    One workspace per (device, stream): kernels on one stream run one after another, so they never share a
    counter at the same time. Kernels put the counters they used back to zero, so no launch pays for a
    memset. (Graphs that sample must therefore not be replayed concurrently on several streams.)
    """
    key = _stream_key(device)
    counters = _WORKSPACES.get(key)
    if counters is None or counters.numel() < n:
        counters = torch.zeros(max(n, 4096), dtype=torch.int32, device=device)
        _WORKSPACES[key] = counters
        _ALL_WORKSPACES.append(counters)
    return counters


_SCRATCH: dict[tuple[int, int], torch.Tensor] = {}


def scratch(device: torch.device, shapes: list[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
    """Uninitialised work tensors of these shapes and dtypes, carved from one byte workspace per (device, stream)
    that only grows: no allocation on the sampling path once the largest batch has been seen. Kernels on one stream
    run one after another, so one call's tensors are free again when the next call launches; each must be written
    before it is read. (Kept forever, as zeroed_counters' workspaces: CUDA graphs may hold their addresses.)"""
    offsets, size = [], 0
    for shape, dtype in shapes:
        align = max(dtype.itemsize, 16)
        size = -(-size // align) * align
        offsets.append(size)
        size += dtype.itemsize * math.prod(shape)
    key = _stream_key(device)
    workspace = _SCRATCH.get(key)
    if workspace is None or workspace.numel() < size:
        workspace = torch.empty(max(size, 1 << 20), dtype=torch.uint8, device=device)
        _SCRATCH[key] = workspace
        _ALL_WORKSPACES.append(workspace)
    return [workspace[at:at + dtype.itemsize * math.prod(shape)].view(dtype).view(shape)
            for at, (shape, dtype) in zip(offsets, shapes)]


def launch_cluster_race(logits, temperatures, seeds, out, ctas, per_cta, tuning: Tuning) -> bool:
    """Launches the cluster race; False (recorded: the column race from then on) if it cannot run here."""
    rows, vocab = logits.shape
    gpu = logits.device.type == "cuda"
    wait, _trigger = dependency_flags(logits.device, "sample", tuning)
    try:
        _sample_cluster_kernel[(rows,)](logits, logits.stride(0), temperatures.reshape(rows), seeds.reshape(rows),
                                        out, vocab, CTAS=ctas, TILES=per_cta, DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES,
                                        GPU=gpu, WAIT=wait, num_warps=SAMPLE_WARPS,
                                        **({"num_ctas": ctas} if gpu else {}), **({"launch_pdl": True} if wait else {}))
        return True
    except Exception as exc:  # e.g. a Triton that cannot build it: the column race draws the same tokens
        KERNEL_FAILURES.record(CLUSTER_RACE, exc, "the column race kernel")
        return False


def _launch_column_race(logits, temperatures, seeds, out, tiles_per_program, tuning: Tuning) -> None:
    rows, vocab = logits.shape
    p = sample_plan(rows, vocab, logits.device, tuning, tiles_per_program)
    gpu = logits.device.type == "cuda"
    part_score = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_index = torch.empty((rows, p.chunks), dtype=torch.int32, device=logits.device)
    chunks_p2 = triton.next_power_of_2(p.chunks)
    one_launch = tuning.one_launch_sampling
    counters = zeroed_counters(logits.device, rows) if one_launch else part_index  # (unused with two launches)
    pdl = grid_dependency_control(logits.device)
    wait, trigger = dependency_flags(logits.device, "sample", tuning)
    _sample_column_race_kernel[(rows * p.chunks,)](
        logits, logits.stride(0), temperatures.reshape(rows), seeds.reshape(rows), part_score, part_index, counters,
        out, vocab, p.tiles, p.tiles_per_program, p.chunks, DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES, GPU=gpu,
        COMBINE_HERE=one_launch, CHUNKS_P2=chunks_p2, WAIT=wait, TRIGGER=trigger if one_launch else pdl,
        num_warps=SAMPLE_WARPS, **({"launch_pdl": True} if wait else {}))
    if not one_launch:
        _sample_race_combine_kernel[(rows,)](part_score, part_index, out, p.chunks, CHUNKS_P2=chunks_p2, WAIT=pdl,
                                             num_warps=1, **({"launch_pdl": True} if pdl else {}))


def launch_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor, out: torch.Tensor,
                  tuning: Tuning, tiles_per_program: int | None = None) -> None:
    """Draw one token per row into `out` with the kernel the plan picks here; a given program length forces the
    column race kernel with that length (the tokens are the same either way)."""
    rows, vocab = logits.shape
    if tiles_per_program is None:
        cluster = cluster_race_geometry(rows, vocab, logits.dtype, logits.device, tuning)
        if cluster is not None and launch_cluster_race(logits, temperatures, seeds, out, *cluster, tuning):
            return
    try:
        _launch_column_race(logits, temperatures, seeds, out, tiles_per_program, tuning)
    except Exception as exc:
        if not grid_dependency_control(logits.device):
            raise
        KERNEL_FAILURES.record(DEPENDENT_LAUNCH, exc, "plain launches")  # e.g. a driver without PDL
        _launch_column_race(logits, temperatures, seeds, out, tiles_per_program, tuning)
