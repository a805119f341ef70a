"""Fused temperature + softmax, and fused temperature + sample, as Triton kernels with torch references.

temperature_softmax(logits [B, V], temperatures [B] or [B, 1], out=None) -> probs [B, V]
    softmax(logits / t) per row, fp32 math, output in the logits' dtype; in place when `out is logits`.
temperature_sample(logits [B, V], temperatures, seeds [B] int64) -> token ids [B] int64
    one sample per row from softmax(logits / t) by a two-stage Gumbel-max race (columns of tokens by
    their mass, then a token inside the winning column), reading the logits once and never writing
    probabilities. Deterministic for given seeds: a row's token does not depend on the batch around it.

Rows are split into chunks so that even one row spreads over the whole GPU. Partials are combined in a
fixed order (no atomic reductions), so results are deterministic for a given shape.

temperature_softmax
- One launch, one thread-block cluster of 16 CTAs per row (Hopper and later), where an H200 sweep found it
  faster: vocabularies of 16385-65536 tokens at any batch size, up to 131072 tokens from 4 rows, up to 524288
  tokens from 64 rows and 2^24 elements. Each CTA keeps its span of the row in registers and pushes the span's
  (max, sum) into every CTA's shared memory (st.async completing the receiver's mbarrier); each CTA combines
  the partials in a fixed order as soon as they have all landed, then writes its probabilities. Every element
  is read once and written once, and no cluster waits on another.
- Otherwise: two launches. The first reduces each chunk to (max, sum of exponentials); the second combines a
  row's partials, re-reads its chunk (walking backwards, so its first reads hit what the first pass left in
  L2) and writes. On Hopper and later both launch as programmatic dependents (grid-dependency control): the
  first waits at entry for the kernel before it, then lets the second launch at once; the second reads its
  first block before waiting for the first's partials. This shaves launch latency. Before Hopper they are
  plain launches (griddepcontrol is sm_90 PTX).
The interpreter follows the same plan (a cluster is then one program), so CPU tests run both kernels.

temperature_sample (exact samples of softmax(x / t); noise from Philox4x32-7 keyed by the row's seed)
- A column race in one launch. A row is cut into tiles of 4096 tokens, and a tile into 512 columns of 8
  tokens (token j of a tile sits in column j % 512). Each column races with its log-mass plus one Gumbel
  draw, so a column wins with probability (its mass / row mass); inside the winning column a second race
  over its 8 tokens, with 8 draws of its own, picks the token. The product of the two is exactly
  softmax(x / t). (Those 8 draws are keyed by depth and shared by all columns of the row: only the
  winning column's race is ever used, and the column race never sees them.) Per token that is a max, an
  FMA, an exponential and an add: no per-token noise, which was the bulk of the work (Philox and two
  logarithms per token).
- Each program takes 1-4 tiles of a row, keeps its best column, draws that column's token and publishes
  (column score, token); the row's last program to finish (an arrival counter) picks the highest score in
  a fixed order. The column layout and the noise counters do not depend on the batch or the launch
  geometry: a row's token depends only on its logits, its temperature and its seed.
- A NaN logit is never drawn: a program that meets one redoes its tiles treating NaN as masked.
- The same race by a thread-block cluster (Hopper and later) where an H200 measured it faster: fp32 logits of
  65537-131072 tokens (17-32 tiles) and 2-16 rows. Sixteen CTAs take two tiles of a row each and exchange
  their winners through distributed shared memory (the softmax's mbarrier exchange) instead of the arrival
  counter; the noise and tie rules are the column race's, so it draws the same tokens.

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


# Chosen from a sweep on an H200 (tools/tune_sampler.py, figures in docs/BENCHMARKS.md): small problems are
# latency-bound and want many small programs, large ones want long programs with wide tiles.
SOFTMAX_CONFIGS = ((1 << 22, Config(1024, 4, 4)), (1 << 24, Config(1024, 4, 8)),
                   (None, Config(2048, 8, 8)))  # (below n elements, config)
NORMALIZE_BLOCK_MAX = 8192  # the second pass reads its chunk in blocks of up to this many elements

# Column race: the layout (not a tuning knob: it decides which noise a token sees) and the launch geometry.
COLUMN_DEPTH = 8      # tokens per column
COLUMN_LANES = 512    # columns per tile (4 warps x 32 threads x 4 adjacent columns)
SAMPLE_WARPS = 4
SAMPLE_MAX_TILES_PER_PROGRAM = 4  # H200 sweep (tools/tune_sampler.py): ~4 programs a multiprocessor, <= 4 tiles


@dataclass(frozen=True)
class Plan:
    """Launch geometry for one shape: a function of (rows, vocab, device) only, so results are repeatable."""

    config: Config
    chunk: int            # elements per program (whole tiles)
    chunks: int           # programs per row
    gpu: bool             # compiled for a GPU (not the interpreter): fast exp2 and log2
    normalize_block: int  # elements the second pass reads at a time: a power of two dividing chunk
    chunks_p2: int        # partials the second pass reads: the most chunks any batch size gets, to a power of two


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: keep several chunks per row so the split path is exercised


# Programmatic dependent launch (NVIDIA, Hopper on). A kernel launched as a dependent may be scheduled while the
# kernel before it on the stream finishes; before its first memory access it waits (griddepcontrol.wait) until
# that kernel has finished and its writes are visible. A kernel lets its dependents launch early
# (griddepcontrol.launch_dependents) only after that wait, so whatever launches behind it sees what came before.
# The second softmax pass always launches as a dependent of the first. entry_wait: the kernels that start a
# softmax or a draw and also launch as dependents of whatever ran before them; trigger_next: those kernels and
# the second pass let the next launch start early. H200 (tools/dependent_launch.py, docs/BENCHMARKS.md): the first
# softmax pass gains 0.3-0.5 us back to back and 0.1-0.6 us after an unrelated kernel; the cluster softmax and
# the sampler gain only back to back and lose 0.1-0.3 us after an unrelated kernel; trigger_next is slower at
# some shapes. So only the first pass waits at entry.
ENTRY_WAIT_KERNELS = ("softmax_partials", "softmax_cluster", "sample")
GRID_DEPENDENCY = {"entry_wait": frozenset({"softmax_partials"}), "trigger_next": False}


def nvidia_hopper_or_later(device: torch.device) -> bool:
    return (device.type == "cuda" and not torch.version.hip
            and torch.cuda.get_device_capability(device)[0] >= 9)


def _clusters_run_on(device: torch.device) -> bool:
    """Whether the cluster kernels can run here: thread-block clusters (and the PTX exchange) are NVIDIA's, from
    Hopper on; the interpreter runs a cluster as one program."""
    return device.type == "cpu" or nvidia_hopper_or_later(device)


def grid_dependency_control(device: torch.device) -> bool:
    """Whether kernels on this device may use programmatic dependent launch: griddepcontrol is sm_90+ PTX, so
    on an A100 or an L4 (and on AMD) the kernels compile without it."""
    return nvidia_hopper_or_later(device)


def _dependency_flags(device: torch.device, kernel: str) -> tuple[bool, bool]:
    """(launched as a dependent and waits at entry, lets the next launch start early) for one of
    ENTRY_WAIT_KERNELS on this device."""
    pdl = grid_dependency_control(device)
    return pdl and kernel in GRID_DEPENDENCY["entry_wait"], pdl and GRID_DEPENDENCY["trigger_next"]


def softmax_plan(rows: int, vocab: int, device: torch.device) -> Plan:
    config = next(c for limit, c in SOFTMAX_CONFIGS if limit is None or rows * vocab < limit)
    block = min(config.block, max(16, triton.next_power_of_2(max(vocab, 1))))
    if block != config.block:
        config = Config(block, min(config.warps, 4), config.waves)
    tiles = triton.cdiv(max(vocab, 1), block)
    programs = config.waves * _multiprocessors(device)  # aimed at, over all rows
    most_chunks = min(tiles, programs, 1024)  # per row, what rows = 1 gets
    chunks = max(1, min(most_chunks, triton.cdiv(programs, max(rows, 1))))
    chunk = triton.cdiv(tiles, chunks) * block
    return Plan(config, chunk, triton.cdiv(max(vocab, 1), chunk), device.type == "cuda",
                min(chunk & -chunk, NORMALIZE_BLOCK_MAX), triton.next_power_of_2(most_chunks))


def softmax_variant(rows: int, vocab: int, device: torch.device) -> tuple:
    """What the softmax compiles for this shape (kernel choice and compile-time constants). Row counts and
    chunk counts are runtime arguments (never specialised), so few batch sizes need a compile of their own."""
    cluster = _cluster_geometry(rows, vocab, device)
    if cluster is not None:
        return ("cluster",) + cluster
    p = softmax_plan(rows, vocab, device)
    return ("two_pass", p.config.block, p.config.warps, p.normalize_block, p.chunks_p2)


@dataclass(frozen=True)
class SamplePlan:
    """Launch geometry of the column race. Only speed depends on it, never the tokens drawn."""

    tiles: int               # tiles per row
    tiles_per_program: int
    chunks: int              # programs per row


def sample_plan(rows: int, vocab: int, device: torch.device, tiles_per_program: int | None = None) -> SamplePlan:
    tiles = triton.cdiv(max(vocab, 1), COLUMN_DEPTH * COLUMN_LANES)
    if tiles_per_program is None:  # about four programs per multiprocessor, then longer programs
        tiles_per_program = min(SAMPLE_MAX_TILES_PER_PROGRAM, triton.cdiv(rows * tiles, 4 * _multiprocessors(device)))
    tiles_per_program = max(1, min(tiles_per_program, tiles))
    return SamplePlan(tiles, tiles_per_program, triton.cdiv(tiles, tiles_per_program))


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

    @triton.jit(do_not_specialize=["chunks"])
    def _softmax_partials_kernel(logits_ptr, row_stride, temp_ptr, part_max_ptr, part_sum_ptr,
                                 vocab, chunk, chunks, BLOCK: tl.constexpr, WAIT: tl.constexpr,
                                 TRIGGER: tl.constexpr, GPU: tl.constexpr):
        if WAIT:
            tl.extra.cuda.gdc_wait()  # launched as a dependent of the kernel before: its writes are visible now
        if TRIGGER:
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

    @triton.jit(do_not_specialize=["rows", "chunks"])
    def _softmax_normalize_kernel(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr,
                                  part_max_ptr, part_sum_ptr, rows, vocab, chunk, chunks,
                                  BLOCK: tl.constexpr, CHUNKS_P2: tl.constexpr, WAIT: tl.constexpr,
                                  TRIGGER: tl.constexpr, GPU: tl.constexpr):
        # Walk the tensor from its end: the first tiles read here are the last the first pass read.
        pid = rows * chunks - 1 - tl.program_id(0)
        c = pid % chunks
        row = pid // chunks
        inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
        base = logits_ptr + row.to(tl.int64) * row_stride
        out_base = out_ptr + row.to(tl.int64) * out_row_stride
        start = c * chunk
        end = tl.minimum(start + chunk, vocab)
        cols = start + tl.arange(0, BLOCK)
        # The first block is read before waiting for the first pass: that pass never writes the logits (and
        # let this one launch only once the logits' writer had finished), and this program only writes its own
        # chunk, after the wait. Each later block is read one ahead.
        x = tl.load(base + cols, mask=cols < end, other=float("-inf"))
        if WAIT:
            tl.extra.cuda.gdc_wait()  # launched as a programmatic dependent of the first pass
        if TRIGGER:
            tl.extra.cuda.gdc_launch_dependents()
        idx = tl.arange(0, CHUNKS_P2)
        pm = tl.load(part_max_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
        ps = tl.load(part_sum_ptr + row * chunks + idx, mask=idx < chunks, other=0.0)
        m_row = tl.max(pm, axis=0)
        total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, tl.exp(pm - m_row)), axis=0)
        inv_total = 1.0 / total
        for _off in range(0, chunk, BLOCK):
            next_cols = cols + BLOCK
            x_next = tl.load(base + next_cols, mask=next_cols < end, other=float("-inf"))
            p = tl.exp(x.to(tl.float32) * inv_t - m_row) * inv_total
            tl.store(out_base + cols, p.to(out_ptr.dtype.element_ty), mask=cols < end)
            x, cols = x_next, next_cols

    # The cluster softmax's exchange of span partials, in inline PTX (Hopper thread-block clusters). Each CTA owns a
    # static shared buffer, declared here apart from Triton's own scratch: one mbarrier (8 bytes) and one (max, sum)
    # slot of 8 bytes per CTA of the cluster (at most 16). Every CTA pushes its span's partials into its slot in
    # every CTA's buffer with st.async, which completes 8 bytes of the receiving CTA's mbarrier; a CTA reads the
    # partials once its mbarrier has seen them all. No fence and no cluster-wide barrier between a CTA's reduction
    # and its writes: it waits only for the partials themselves.

    @triton.jit
    def _exchange_init(token, ctas):
        """Start of the kernel: thread 0 initialises this CTA's mbarrier to expect ctas partials of 8 bytes, then
        every thread arrives (relaxed) at the cluster barrier whose wait, in _push_partials, makes sure every
        CTA's mbarrier is initialised before anyone pushes into it. Returns token."""
        return tl.inline_asm_elementwise(
            ".shared .align 16 .b8 hotfuse_exchange[136];\n\t"
            "{\n\t.reg .pred p;\n\t.reg .u32 t, a, n;\n\tmov.u32 t, %tid.x;\n\tsetp.eq.u32 p, t, 0;\n\t"
            "mov.u32 a, hotfuse_exchange;\n\tshl.b32 n, $2, 3;\n\t"
            "@p mbarrier.init.shared::cta.b64 [a], 1;\n\t"
            "@p mbarrier.arrive.expect_tx.shared::cta.b64 _, [a], n;\n\t"
            "fence.mbarrier_init.release.cluster;\n\t"
            "barrier.cluster.arrive.relaxed.aligned;\n\t}\n\tmov.b32 $0, $1;",
            "=r,r,r", [token, ctas], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def _push_partials(m, s, token, ctas):
        """Thread t < ctas pushes this CTA's (m, s) into slot <this CTA's rank> of CTA t. Returns token."""
        return tl.inline_asm_elementwise(
            "{\n\t.reg .pred p;\n\t.reg .u32 t, r, a, b, ra, rb;\n\t"
            "barrier.cluster.wait.aligned;\n\t"
            "mov.u32 t, %tid.x;\n\tsetp.lt.u32 p, t, $4;\n\t"
            "mov.u32 r, %cluster_ctarank;\n\t"
            "mov.u32 b, hotfuse_exchange;\n\tmad.lo.u32 a, r, 8, b;\n\tadd.u32 a, a, 8;\n\t"
            "@p mapa.shared::cluster.u32 ra, a, t;\n\t@p mapa.shared::cluster.u32 rb, b, t;\n\t"
            "@p st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.f32 [ra], {$1, $2}, [rb];\n\t}\n\t"
            "mov.b32 $0, $3;",
            "=r,f,f,r,r", [m, s, token, ctas], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def _pull_partials(slot):
        """Waits until every CTA's partials have landed in this CTA's buffer, then reads slot `slot`: (max, sum)."""
        return tl.inline_asm_elementwise(
            "{\n\t.reg .pred p;\n\t.reg .u32 b, a;\n\tmov.u32 b, hotfuse_exchange;\n\t"
            "HOTFUSE_WAIT_${:uid}:\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [b], 0;\n\t"
            "@!p bra HOTFUSE_WAIT_${:uid};\n\t"
            "mad.lo.u32 a, $2, 8, b;\n\tadd.u32 a, a, 8;\n\tld.shared.v2.f32 {$0, $1}, [a];\n\t}",
            "=f,=f,r", [slot], dtype=(tl.float32, tl.float32), is_pure=False, pack=1)

    @triton.jit
    def _cluster_arrive(token):
        return tl.inline_asm_elementwise("barrier.cluster.arrive.relaxed.aligned;\n\tmov.b32 $0, $1;",
                                         "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def _cluster_wait(token):
        return tl.inline_asm_elementwise("barrier.cluster.wait.aligned;\n\tmov.b32 $0, $1;",
                                         "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def _softmax_cluster_kernel(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr, vocab,
                                CTAS: tl.constexpr, SPAN: tl.constexpr, WAIT: tl.constexpr, TRIGGER: tl.constexpr,
                                GPU: tl.constexpr):
        # One program per row, run by a thread-block cluster of CTAS CTAs (Hopper, launched with num_ctas=CTAS):
        # Triton lays the [CTAS, SPAN] tile out one span per CTA, so the row sits in the cluster's registers.
        # Each span pushes its (max, sum) into every CTA's shared memory (distributed shared memory, no atomics,
        # no waiting on other clusters); each CTA combines all CTAS partials in slot order, then writes its
        # probabilities. Every element is read once and written once, in one launch. (The interpreter runs the
        # whole tile as one program: the partials are already all there.)
        tl.static_assert(CTAS <= 16)  # the exchange buffer's slots
        row = tl.program_id(0)
        if GPU:
            ready = _exchange_init(row, CTAS)  # shared memory only: before the wait
        if WAIT:
            tl.extra.cuda.gdc_wait()
        if TRIGGER:
            tl.extra.cuda.gdc_launch_dependents()
        inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
        span = tl.arange(0, CTAS)
        cols = span[:, None] * SPAN + tl.arange(0, SPAN)[None, :]
        x = tl.load(logits_ptr + row.to(tl.int64) * row_stride + cols, mask=cols < vocab,
                    other=float("-inf")).to(tl.float32) * inv_t
        m = tl.max(x, axis=1)
        e = _exp(x - tl.where(m == float("-inf"), 0.0, m)[:, None], GPU)  # an all -inf span: e = 0, no inf - inf
        s = tl.sum(e, axis=1)
        if GPU:
            pushed = _push_partials(m, s, ready + 0 * span, CTAS)
            pm, ps = _pull_partials(tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None])
            # every partial this CTA needs has landed; no CTA exits before all have (see the wait below)
            received = _cluster_arrive(row)
        else:
            pm = tl.broadcast_to(m[None, :], [CTAS, CTAS])
            ps = tl.broadcast_to(s[None, :], [CTAS, CTAS])
        m_row = tl.max(pm, axis=1)
        total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, _exp(pm - m_row[:, None], GPU)), axis=1)
        # 0 / 0 = NaN when the whole row is -inf, as torch gives
        scale = tl.where(m == float("-inf"), 0.0, _exp(m - m_row, GPU)) / total
        tl.store(out_ptr + row.to(tl.int64) * out_row_stride + cols,
                 (e * scale[:, None]).to(out_ptr.dtype.element_ty), mask=cols < vocab)
        if GPU:
            _cluster_wait(received)  # so no CTA leaves while a push into another CTA could still be in flight

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
    def _column_token_scores(base, col, depth, vocab, scale, token_noise, DEPTH: tl.constexpr, LANES: tl.constexpr):
        """The race inside column col: its tokens (depth runs along them) and their scores, x * scale plus the
        per-depth noise; tokens past the vocabulary and NaN logits score -inf. col, depth and token_noise come
        shaped to broadcast together."""
        tokens = (col // LANES) * (DEPTH * LANES) + depth * LANES + col % LANES
        in_vocab = tokens < vocab
        x = tl.load(base + tokens, mask=in_vocab, other=float("-inf")).to(tl.float32)
        return tl.where(in_vocab & (x == x), x * scale + token_noise, float("-inf")), tokens

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
                     GPU: tl.constexpr, MASKED: tl.constexpr, NAN_AS_MASKED: tl.constexpr):
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
        log_mass, mass = _column_log_mass(x, scale, 0, GPU)
        score = log_mass + _column_noise(seed, tile, LANES, GPU)
        better = score > best  # strict: on ties a lane keeps its earlier column
        return tl.where(better, score, best), tl.where(better, tile * LANES + lane, best_col), mass != mass

    @triton.jit
    def _column_tiles(base, first, last, vocab, scale, seed, DEPTH: tl.constexpr, LANES: tl.constexpr,
                      GPU: tl.constexpr, NAN_AS_MASKED: tl.constexpr):
        best = tl.full([LANES], float("-inf"), tl.float32)
        best_col = tl.full([LANES], 0, tl.int32)
        nan = tl.zeros([LANES], tl.int1)
        full = tl.minimum(last, vocab // (DEPTH * LANES))  # whole tiles load without a mask
        for tile in range(first, full):
            best, best_col, n = _column_tile(base, tile, vocab, scale, seed, best, best_col, DEPTH, LANES, GPU,
                                             False, NAN_AS_MASKED)
            nan |= n
        if full < last:
            best, best_col, n = _column_tile(base, full, vocab, scale, seed, best, best_col, DEPTH, LANES, GPU,
                                             True, NAN_AS_MASKED)
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
        scale = 1.4426950408889634 / tl.load(temp_ptr + row).to(tl.float32)
        seed = tl.load(seed_ptr + row)
        base = logits_ptr + row.to(tl.int64) * row_stride
        first = c * tiles_per_program
        last = tl.minimum(first + tiles_per_program, tiles)
        token_noise = _depth_noise(seed, DEPTH, GPU)  # drawn first, off the critical path
        best, best_col, nan = _column_tiles(base, first, last, vocab, scale, seed, DEPTH, LANES, GPU, False)
        if tl.max(nan.to(tl.int32), axis=0) > 0:  # rare: a NaN logit; redo these tiles with NaN as masked
            best, best_col, nan = _column_tiles(base, first, last, vocab, scale, seed, DEPTH, LANES, GPU, True)
        top, col = _best(best, best_col, 0, GPU)
        # An all -inf chunk ends on its first column's first token, with score -inf.
        s, tokens = _column_token_scores(base, col, tl.arange(0, DEPTH), vocab, scale, token_noise, DEPTH, LANES)
        _s, choice = _best(s, tokens, 0, GPU)
        tl.store(part_score_ptr + row * chunks + c, top)
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
        # fixed-order read of the row's partial winners: the highest score, then the lowest token
        idx = tl.arange(0, CHUNKS_P2)
        if COHERENT:  # written by other programs of this launch: read past the L1 cache
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"),
                            cache_modifier=".cg")
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647,
                            cache_modifier=".cg")
        else:
            score = tl.load(part_score_ptr + row * chunks + idx, mask=idx < chunks, other=float("-inf"))
            index = tl.load(part_index_ptr + row * chunks + idx, mask=idx < chunks, other=2147483647)
        _top, choice = _best(score, index, 0, False)
        tl.store(out_ptr + row, choice.to(tl.int64))

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
            ready = _exchange_init(row, CTAS)
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
                                         DEPTH, LANES)
        _s, choice = _best(s, tokens, 1, False)
        if GPU:
            pushed = _push_partials(top, choice.to(tl.float32, bitcast=True), ready + 0 * span, CTAS)
            scores, picks = _pull_partials(tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None])
            picks = picks.to(tl.int32, bitcast=True)
            received = _cluster_arrive(row)
        else:
            scores = tl.broadcast_to(top[None, :], [CTAS, CTAS])
            picks = tl.broadcast_to(choice[None, :], [CTAS, CTAS])
        _winner, token = _best(scores, picks, 1, False)
        tl.store(out_ptr + row + 0 * span, token.to(tl.int64), mask=span == 0)
        if GPU:
            _cluster_wait(received)

# Cluster softmax (Hopper and later): CTAs per row (16 is a non-portable cluster size, which Hopper allows), the
# spans a CTA holds in registers, and where it beats the two-pass kernels (H200 sweep, docs/BENCHMARKS.md): spans
# up to one_row_span from a single row; up to short_span from short_span_min_rows rows; longer spans from
# long_span_min_rows rows and long_span_min_elements elements.
CLUSTER = {"enabled": True, "ctas": 16, "min_span": 1 << 11, "max_span": 1 << 15, "one_row_span": 1 << 12,
           "short_span": 1 << 13, "short_span_min_rows": 4, "long_span_min_rows": 64,
           "long_span_min_elements": 1 << 24}


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


def _cluster_geometry(rows: int, vocab: int, device: torch.device) -> tuple[int, int, int] | None:
    """(CTAs per row, span per CTA, warps) for the cluster kernel, or None when it does not apply."""
    if not CLUSTER["enabled"] or not _clusters_run_on(device):
        return None
    ctas = CLUSTER["ctas"]
    span = triton.next_power_of_2(triton.cdiv(max(vocab, 1), ctas))
    if not CLUSTER["min_span"] <= span <= CLUSTER["max_span"]:
        return None
    if span <= CLUSTER["one_row_span"]:
        min_rows, min_elements = 0, 0  # any batch size
    elif span <= CLUSTER["short_span"]:
        min_rows, min_elements = CLUSTER["short_span_min_rows"], 0
    else:
        min_rows, min_elements = CLUSTER["long_span_min_rows"], CLUSTER["long_span_min_elements"]
    if rows < min_rows or rows * vocab < min_elements:
        return None
    return ctas, span, (8 if span <= 1 << 14 else 16)


def _launch_softmax_cluster(logits, temperatures, out, ctas, span, warps) -> None:
    rows, vocab = logits.shape
    gpu = logits.device.type == "cuda"
    wait, trigger = _dependency_flags(logits.device, "softmax_cluster")
    _softmax_cluster_kernel[(rows,)](logits, logits.stride(0), out, out.stride(0), temperatures.reshape(rows),
                                     vocab, CTAS=ctas, SPAN=span, WAIT=wait, TRIGGER=trigger, GPU=gpu,
                                     num_warps=warps, **({"num_ctas": ctas} if gpu else {}),
                                     **({"launch_pdl": True} if wait else {}), enable_fp_fusion=False)


def _launch_softmax(logits: torch.Tensor, temperatures: torch.Tensor, out: torch.Tensor) -> None:
    rows, vocab = logits.shape
    cluster = _cluster_geometry(rows, vocab, logits.device)
    if cluster is not None:
        try:
            _launch_softmax_cluster(logits, temperatures, out, *cluster)
            return
        except Exception as exc:  # e.g. a Triton that cannot compile it, or a partition too small for the cluster
            CLUSTER["enabled"] = False
            logger.warning("hotfuse: cluster softmax unavailable here (%s: %s); using the two-pass kernels",
                           type(exc).__name__, str(exc).splitlines()[-1] if str(exc) else "")
    p = softmax_plan(rows, vocab, logits.device)
    c = p.config
    part_max = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_sum = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    temps = temperatures.reshape(rows)
    grid = (rows * p.chunks,)
    pdl = grid_dependency_control(logits.device)
    wait, trigger = _dependency_flags(logits.device, "softmax_partials")
    _softmax_partials_kernel[grid](logits, logits.stride(0), temps, part_max, part_sum, vocab, p.chunk, p.chunks,
                                   BLOCK=c.block, WAIT=wait, TRIGGER=pdl, GPU=p.gpu, num_warps=c.warps,
                                   enable_fp_fusion=False, **({"launch_pdl": True} if wait else {}))
    _softmax_normalize_kernel[grid](logits, logits.stride(0), out, out.stride(0), temps, part_max, part_sum, rows,
                                    vocab, p.chunk, p.chunks, BLOCK=p.normalize_block, CHUNKS_P2=p.chunks_p2,
                                    WAIT=pdl, TRIGGER=trigger, GPU=p.gpu, num_warps=c.warps,
                                    enable_fp_fusion=False, **({"launch_pdl": True} if pdl else {}))


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
    if out is None:
        out = torch.empty_like(logits)
    if logits.numel():
        _launch_softmax(logits, temperatures, out)
    count_fused(FUSION)  # once launched: a kernel that raises (say, cannot compile) is not counted as fused
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
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows:
        _launch_sample(logits, temperatures, seeds, out)
    count_fused(FUSION)
    return out


# The row's last program combines the chunk winners in the same launch; False: a second launch does (the
# tests compare the two).
ONE_LAUNCH_SAMPLING = True
# The column race by a thread-block cluster (Hopper on): 16 CTAs a row, each racing TILES_PER_CTA of the row's
# tiles; the CTAs exchange their winners through distributed shared memory instead of an arrival counter and a
# read back from global memory. It draws the tokens of the column race kernel. Used for fp32 logits of 17-32
# tiles (65537-131072 tokens) and min_rows to max_rows rows, where the H200 measured it faster
# (tools/sample_variants.py, docs/BENCHMARKS.md); with bf16/fp16 logits Triton lays its tiles out through
# 64 KB of shared memory, so those stay with the column race kernel.
SAMPLE_CLUSTER = {"enabled": True, "ctas": 16, "tiles_per_cta": 2, "min_rows": 2, "max_rows": 16}


def _sample_cluster_geometry(rows: int, vocab: int, dtype: torch.dtype,
                             device: torch.device) -> tuple[int, int] | None:
    """(CTAs per row, tiles per CTA) for the cluster race, or None when the column race kernel draws."""
    if not SAMPLE_CLUSTER["enabled"] or not _clusters_run_on(device) or dtype != torch.float32:
        return None
    ctas, per_cta = SAMPLE_CLUSTER["ctas"], SAMPLE_CLUSTER["tiles_per_cta"]
    tiles = triton.cdiv(max(vocab, 1), COLUMN_DEPTH * COLUMN_LANES)
    if not SAMPLE_CLUSTER["min_rows"] <= rows <= SAMPLE_CLUSTER["max_rows"]:
        return None
    if not ctas * (per_cta - 1) < tiles <= ctas * per_cta:
        return None
    return ctas, per_cta


def _launch_sample_cluster(logits, temperatures, seeds, out, ctas, per_cta) -> bool:
    """Launches the cluster race; False (and the cluster race off from then on) if it cannot run here."""
    rows, vocab = logits.shape
    gpu = logits.device.type == "cuda"
    wait, _trigger = _dependency_flags(logits.device, "sample")
    try:
        _sample_cluster_kernel[(rows,)](logits, logits.stride(0), temperatures.reshape(rows), seeds.reshape(rows),
                                        out, vocab, CTAS=ctas, TILES=per_cta, DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES,
                                        GPU=gpu, WAIT=wait, num_warps=SAMPLE_WARPS,
                                        **({"num_ctas": ctas} if gpu else {}), **({"launch_pdl": True} if wait else {}))
        return True
    except Exception as exc:  # e.g. a Triton that cannot compile it: the column race draws the same tokens
        SAMPLE_CLUSTER["enabled"] = False
        logger.warning("hotfuse: cluster sampler unavailable here (%s: %s); using the column race kernel",
                       type(exc).__name__, str(exc).splitlines()[-1] if str(exc) else "")
        return False


def _launch_sample(logits: torch.Tensor, temperatures: torch.Tensor, seeds: torch.Tensor, out: torch.Tensor,
                   tiles_per_program: int | None = None) -> None:
    rows, vocab = logits.shape
    if tiles_per_program is None:  # the plan's kernel; a given program length is the column race's
        cluster = _sample_cluster_geometry(rows, vocab, logits.dtype, logits.device)
        if cluster is not None and _launch_sample_cluster(logits, temperatures, seeds, out, *cluster):
            return
    p = sample_plan(rows, vocab, logits.device, tiles_per_program)
    gpu = logits.device.type == "cuda"
    part_score = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_index = torch.empty((rows, p.chunks), dtype=torch.int32, device=logits.device)
    chunks_p2 = triton.next_power_of_2(p.chunks)
    one_launch = ONE_LAUNCH_SAMPLING
    counters = zeroed_counters(logits.device, rows) if one_launch else part_index  # (unused with two launches)
    pdl = grid_dependency_control(logits.device)
    wait, trigger = _dependency_flags(logits.device, "sample")
    _sample_column_race_kernel[(rows * p.chunks,)](
        logits, logits.stride(0), temperatures.reshape(rows), seeds.reshape(rows), part_score, part_index, counters,
        out, vocab, p.tiles, p.tiles_per_program, p.chunks, DEPTH=COLUMN_DEPTH, LANES=COLUMN_LANES, GPU=gpu,
        COMBINE_HERE=one_launch, CHUNKS_P2=chunks_p2, WAIT=wait, TRIGGER=trigger if one_launch else pdl,
        num_warps=SAMPLE_WARPS, **({"launch_pdl": True} if wait else {}))
    if not one_launch:
        _sample_race_combine_kernel[(rows,)](part_score, part_index, out, p.chunks, CHUNKS_P2=chunks_p2, WAIT=pdl,
                                             num_warps=1, **({"launch_pdl": True} if pdl else {}))


def _compile_rows(rows: int, vocab: int, stride: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A [rows, vocab] tensor whose rows overlap, for compiling only: one row of memory, and a row stride that
    Triton specialises as it does `stride` (multiple of 16 or not)."""
    step = 0 if stride % 16 == 0 else 16 + stride % 16
    storage = torch.zeros(step * rows + vocab, dtype=dtype, device=device)
    return storage.as_strided((rows, vocab), (step, 1))


def warm_up(like: torch.Tensor, max_rows: int = 4096) -> bool:
    """Compile every kernel variant that batches of 1..max_rows rows shaped like `like` (dtype, vocabulary, row
    stride) will use, uncounted. Engines call this during their start-up so that no request pays for Triton's
    compilation. Returns False when the kernels would not take such logits anyway.
    """
    if like.dim() != 2 or unsupported_reason(like, torch.ones(like.shape[0], device=like.device)) is not None:
        return False
    if like.device.type != "cuda":
        return True  # the interpreter compiles nothing
    vocab, stride, device = like.shape[1], max(like.stride(0), like.shape[1]), like.device
    first_rows = {}  # softmax variant -> the first batch size that uses it
    for rows in range(1, max_rows + 1):
        first_rows.setdefault(softmax_variant(rows, vocab, device), rows)
    for rows in first_rows.values():
        dummy = _compile_rows(rows, vocab, stride, like.dtype, device)
        _launch_softmax(dummy, torch.ones(rows, device=device), dummy)
    # The sampler compiles once per program length (not per batch size): each one the plan can choose.
    dummy = _compile_rows(1, vocab, stride, like.dtype, device)
    seeds = torch.zeros(1, dtype=torch.int64, device=device)
    out = torch.empty(1, dtype=torch.int64, device=device)
    for tiles_per_program in sorted({sample_plan(1, vocab, device, t).tiles_per_program
                                     for t in range(1, SAMPLE_MAX_TILES_PER_PROGRAM + 1)}):
        _launch_sample(dummy, torch.ones(1, device=device), seeds, out, tiles_per_program)
    cluster = _sample_cluster_geometry(SAMPLE_CLUSTER["min_rows"], vocab, like.dtype, device)
    if cluster is not None:  # compiled for any number of rows
        _launch_sample_cluster(dummy, torch.ones(1, device=device), seeds, out, *cluster)
    return True
