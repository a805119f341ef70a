"""Planning the sampler's launches: the tuning (a frozen dataclass), the cluster tables and the geometry functions.

Everything here is a function of (rows, vocabulary, dtype, device, tuning) and of which kernels failed to build or
launch in this process (hotfuse.kernels.KERNEL_FAILURES), never of the values in a batch, so results are
repeatable for a shape. Tools and tests that want another setting pass their own `Tuning` (`dataclasses.replace(
DEFAULT_TUNING, ...)`) to the public functions; nothing here is mutated at run time.

The defaults come from sweeps on an H200 (tools/tune_sampler.py, docs/BENCHMARKS.md): small problems are
latency-bound and want many small programs, large ones long programs with wide tiles; the cluster kernels win
where the row fits a 16-CTA cluster and the batch is small enough that the two-pass split would leave the GPU
idle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hotfuse.kernels import KERNEL_FAILURES, nvidia_hopper_or_later, triton
from hotfuse.kernels.cluster import clusters_run_on

# Names under which KERNEL_FAILURES records what stopped working here.
CLUSTER_SOFTMAX = "softmax_cluster"
CLUSTER_RACE = "sample_cluster"
DEPENDENT_LAUNCH = "dependent_launch"


@dataclass(frozen=True)
class Config:
    block: int          # elements per tile
    warps: int
    waves: int          # aim for about waves x multiprocessors programs


@dataclass(frozen=True)
class ClusterSoftmax:
    """Where the one-launch cluster softmax (16 CTAs a row, the row in registers) beats the two-pass kernels:
    spans (the part of a row one CTA holds) up to one_row_span from a single row; up to short_span from
    short_span_min_rows rows; longer spans (up to max_span) from long_span_min_rows rows and long_span_min_elements
    elements."""

    ctas: int = 16                       # a non-portable cluster size, which Hopper allows
    min_span: int = 1 << 11
    max_span: int = 1 << 15
    one_row_span: int = 1 << 12
    short_span: int = 1 << 13
    short_span_min_rows: int = 4
    long_span_min_rows: int = 64
    long_span_min_elements: int = 1 << 24


@dataclass(frozen=True)
class ClusterRace:
    """Where the column race by a thread-block cluster beats the one-launch column race: fp32 logits of
    ctas * (tiles_per_cta - 1) + 1 .. ctas * tiles_per_cta tiles (65537-131072 tokens) and min_rows..max_rows rows.
    (With bf16/fp16 logits Triton lays its tiles out through 64 KB of shared memory: those stay with the column
    race kernel.)"""

    ctas: int = 16
    tiles_per_cta: int = 2
    min_rows: int = 2
    max_rows: int = 16


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

# Column race layout: not a tuning knob (it decides which noise a token sees, so the tokens drawn).
COLUMN_DEPTH = 8      # tokens per column
COLUMN_LANES = 512    # columns per tile (4 warps x 32 threads x 4 adjacent columns)
SAMPLE_WARPS = 4


@dataclass(frozen=True)
class Tuning:
    # (below this many elements, config); the last row's limit is None
    softmax_configs: tuple[tuple[int | None, Config], ...] = (
        (1 << 22, Config(1024, 4, 4)), (1 << 24, Config(1024, 4, 8)), (None, Config(2048, 8, 8)))
    normalize_block_max: int = 8192  # the second pass reads its chunk in blocks of up to this many elements
    cluster_softmax: ClusterSoftmax | None = ClusterSoftmax()   # None: never the cluster softmax
    cluster_race: ClusterRace | None = ClusterRace()            # None: never the cluster race
    sample_max_tiles_per_program: int = 4  # ~4 programs a multiprocessor, then longer programs, up to this
    entry_wait: frozenset[str] = field(default_factory=lambda: frozenset({"softmax_partials"}))
    trigger_next: bool = False
    one_launch_sampling: bool = True  # the row's last race program combines; False: a second launch does
    # filtered sampling (search.py): counting passes end once a window holds at most search_candidates tokens (a
    # power of two), and the race settles that window (settle.py); rows still undecided after search_passes launches
    # go to the one-program kernel, whose window search holds filter_candidates tokens at a time
    search_candidates: int = 256
    search_passes: int = 5
    # a pass's programs (search_pass_plan): about this many per multiprocessor over the whole batch, so a pass is one
    # wave (one no row needs costs a load per program); None: the race's chunks
    search_programs_per_multiprocessor: int | None = 2
    # the passes after the first are split as for at most this many rows (None: as the first): they count only the
    # rows the first pass left undecided, often a few, each read by its own chunks
    search_later_pass_rows: int | None = None
    search_step_blocks: int = 2  # a pass reads this many blocks of search.COUNT_STEP tokens a step (one cross-warp
    #                              exchange a step)
    # a pass's histogram bins over the window (a power of two; the last bin also takes the rest), and the first
    # pass's bins per unit of depth from depth 0 (a power of two: a token's mass known within 2^(1/that)); more bins
    # leave narrower windows (fewer passes), and cost more instructions a token (ptxas sm_90a, Triton 3.6, the
    # loop's histogram: 34, 41, 45 and 76 a token for 32, 64, 128 and 256 bins). 128: on an H100, 0.70-0.89x the
    # time of 64 with top-k or top-p at B = 1, 16 and 256, except Qwen3's defaults at B = 1 (1.02x)
    # (docs/experiments/2026-12-08-instruction-counts.md)
    search_bins: int = 128
    search_first_bins_per_depth: int = 4
    search_pass_warps: int = 8
    filter_candidates: int = 1024


DEFAULT_TUNING = Tuning()


def multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: keep several chunks per row so the split path is exercised


def grid_dependency_control(device: torch.device) -> bool:
    """Whether kernels on this device may use programmatic dependent launch: griddepcontrol is sm_90+ PTX, so on an
    A100 or an L4 (and on AMD) the kernels compile without it; and not where it failed to launch here."""
    return nvidia_hopper_or_later(device) and not KERNEL_FAILURES.failed(DEPENDENT_LAUNCH)


def dependency_flags(device: torch.device, kernel: str, tuning: Tuning) -> tuple[bool, bool]:
    """(launched as a dependent and waits at entry, lets the next launch start early) for one of
    ENTRY_WAIT_KERNELS on this device."""
    pdl = grid_dependency_control(device)
    return pdl and kernel in tuning.entry_wait, pdl and tuning.trigger_next


@dataclass(frozen=True)
class Plan:
    """Two-pass softmax geometry for one shape."""

    config: Config
    chunk: int            # elements per program (whole tiles)
    chunks: int           # programs per row
    gpu: bool             # compiled for a GPU (not the interpreter): fast exp2 and log2
    normalize_block: int  # elements the second pass reads at a time: a power of two dividing chunk
    chunks_p2: int        # partials the second pass reads: the most chunks any batch size gets, to a power of two


def softmax_plan(rows: int, vocab: int, device: torch.device, tuning: Tuning = DEFAULT_TUNING) -> Plan:
    config = next(c for limit, c in tuning.softmax_configs if limit is None or rows * vocab < limit)
    block = min(config.block, max(16, triton.next_power_of_2(max(vocab, 1))))
    if block != config.block:
        config = Config(block, min(config.warps, 4), config.waves)
    tiles = triton.cdiv(max(vocab, 1), block)
    programs = config.waves * multiprocessors(device)  # aimed at, over all rows
    most_chunks = min(tiles, programs, 1024)  # per row, what rows = 1 gets
    chunks = max(1, min(most_chunks, triton.cdiv(programs, max(rows, 1))))
    chunk = triton.cdiv(tiles, chunks) * block
    return Plan(config, chunk, triton.cdiv(max(vocab, 1), chunk), device.type == "cuda",
                min(chunk & -chunk, tuning.normalize_block_max), triton.next_power_of_2(most_chunks))


def cluster_softmax_geometry(rows: int, vocab: int, device: torch.device,
                             tuning: Tuning = DEFAULT_TUNING) -> tuple[int, int, int] | None:
    """(CTAs per row, span per CTA, warps) for the cluster softmax, or None when the two-pass kernels run."""
    table = tuning.cluster_softmax
    if table is None or not clusters_run_on(device) or KERNEL_FAILURES.failed(CLUSTER_SOFTMAX):
        return None
    span = triton.next_power_of_2(triton.cdiv(max(vocab, 1), table.ctas))
    if not table.min_span <= span <= table.max_span:
        return None
    if span <= table.one_row_span:
        min_rows, min_elements = 0, 0  # any batch size
    elif span <= table.short_span:
        min_rows, min_elements = table.short_span_min_rows, 0
    else:
        min_rows, min_elements = table.long_span_min_rows, table.long_span_min_elements
    if rows < min_rows or rows * vocab < min_elements:
        return None
    return table.ctas, span, (8 if span <= 1 << 14 else 16)


def softmax_variant(rows: int, vocab: int, device: torch.device, tuning: Tuning = DEFAULT_TUNING) -> tuple:
    """What the softmax compiles for this shape (kernel choice and compile-time constants). Row counts and chunk
    counts are runtime arguments (never specialised), so few batch sizes need a compile of their own."""
    cluster = cluster_softmax_geometry(rows, vocab, device, tuning)
    if cluster is not None:
        return ("cluster",) + cluster
    p = softmax_plan(rows, vocab, device, tuning)
    return ("two_pass", p.config.block, p.config.warps, p.normalize_block, p.chunks_p2)


@dataclass(frozen=True)
class SamplePlan:
    """Launch geometry of the column race. Only speed depends on it, never the tokens drawn."""

    tiles: int               # tiles per row
    tiles_per_program: int
    chunks: int              # programs per row


def sample_plan(rows: int, vocab: int, device: torch.device, tuning: Tuning = DEFAULT_TUNING,
                tiles_per_program: int | None = None) -> SamplePlan:
    tiles = triton.cdiv(max(vocab, 1), COLUMN_DEPTH * COLUMN_LANES)
    if tiles_per_program is None:  # about four programs per multiprocessor, then longer programs
        tiles_per_program = min(tuning.sample_max_tiles_per_program,
                                triton.cdiv(rows * tiles, 4 * multiprocessors(device)))
    tiles_per_program = max(1, min(tiles_per_program, tiles))
    return SamplePlan(tiles, tiles_per_program, triton.cdiv(tiles, tiles_per_program))


def search_pass_plan(rows: int, vocab: int, device: torch.device, tuning: Tuning = DEFAULT_TUNING) -> SamplePlan:
    """The split search's passes: each row in as many chunks as keep the batch's programs near
    search_programs_per_multiprocessor a multiprocessor (at least one chunk a row, at most one a tile)."""
    per = tuning.search_programs_per_multiprocessor
    if per is None:
        return sample_plan(rows, vocab, device, tuning)
    tiles = triton.cdiv(max(vocab, 1), COLUMN_DEPTH * COLUMN_LANES)
    chunks = max(1, min(tiles, per * multiprocessors(device) // max(rows, 1)))
    return sample_plan(rows, vocab, device, tuning, tiles_per_program=triton.cdiv(tiles, chunks))


def later_search_pass_plan(rows: int, vocab: int, device: torch.device, tuning: Tuning = DEFAULT_TUNING) -> SamplePlan:
    """The passes after the first: split as for min(rows, search_later_pass_rows) rows."""
    limit = tuning.search_later_pass_rows
    return search_pass_plan(rows if limit is None else min(rows, limit), vocab, device, tuning)


def cluster_race_geometry(rows: int, vocab: int, dtype: torch.dtype, device: torch.device,
                          tuning: Tuning = DEFAULT_TUNING) -> tuple[int, int] | None:
    """(CTAs per row, tiles per CTA) for the cluster race, or None when the column race kernel draws."""
    table = tuning.cluster_race
    if (table is None or not clusters_run_on(device) or dtype != torch.float32
            or KERNEL_FAILURES.failed(CLUSTER_RACE)):
        return None
    tiles = triton.cdiv(max(vocab, 1), COLUMN_DEPTH * COLUMN_LANES)
    if not table.min_rows <= rows <= table.max_rows:
        return None
    if not table.ctas * (table.tiles_per_cta - 1) < tiles <= table.ctas * table.tiles_per_cta:
        return None
    return table.ctas, table.tiles_per_cta
