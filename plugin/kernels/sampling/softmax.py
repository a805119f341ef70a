"""The temperature + softmax kernels and their launch: softmax(logits / t) per row, fp32 math.

- One launch, one thread-block cluster of 16 CTAs per row (Hopper and later), where the plan takes it
  (`plan.cluster_softmax_geometry`). Each CTA keeps its span of the row in registers and pushes the span's
  (max, sum) into every CTA's shared memory (hotfuse.kernels.cluster); each CTA combines the partials in a fixed
  order as soon as they have all landed, then writes its probabilities. Every element is read once and written
  once, and no cluster waits on another.
- Otherwise two launches. The first reduces each chunk to (max, sum of exponentials); the second combines a row's
  partials, re-reads its chunk (walking backwards, so its first reads hit what the first pass left in L2) and
  writes. On Hopper and later both launch as programmatic dependents (`plan.dependency_flags`): the first waits at
  entry for the kernel before it, then lets the second launch at once; the second reads its first block before
  waiting for the first's partials. Before Hopper they are plain launches (griddepcontrol is sm_90 PTX).
The interpreter follows the same plan (a cluster is then one program), so CPU tests run both kernels.

No floating-point contraction: x / t is rounded once and that same value feeds both the row maximum and the
exponent (an FMA of logit * (1/t) - max would not: 0.2% error on the top probability at temperature 1e-4).
Partials combine in a fixed order (no atomics); no host synchronisation (the kernels capture in CUDA graphs).

Should the cluster kernel or a dependent launch fail to build or launch here, the failure is recorded in
hotfuse.kernels.KERNEL_FAILURES and the two-pass kernels (or plain launches) answer this call and every later
one. Inputs are not checked here: `hotfuse.kernels.sampling` does that.
"""

from __future__ import annotations

import torch

from hotfuse.kernels import KERNEL_FAILURES, tl, triton
from hotfuse.kernels.cluster import cluster_arrive, cluster_wait, exchange_init, pull_pairs, push_pair
from hotfuse.kernels.sampling.plan import CLUSTER_SOFTMAX, DEPENDENT_LAUNCH, Tuning, cluster_softmax_geometry, \
    dependency_flags, grid_dependency_control, softmax_plan

if triton is not None:
    from triton.language.extra import libdevice

    @triton.jit
    def _exp(x, GPU: tl.constexpr):
        if GPU:
            return libdevice.fast_expf(x)  # ex2.approx.ftz: results below 2^-126 flush to zero
        else:
            return tl.exp(x)

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
            ready = exchange_init(row, CTAS)  # shared memory only: before the wait
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
            pushed = push_pair(m, s, ready + 0 * span, CTAS)
            pm, ps = pull_pairs(tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None])
            # every partial this CTA needs has landed; no CTA exits before all have (see the wait below)
            received = cluster_arrive(row)
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
            cluster_wait(received)  # so no CTA leaves while a push into another CTA could still be in flight


def _launch_cluster(logits, temperatures, out, ctas, span, warps, tuning: Tuning) -> None:
    rows, vocab = logits.shape
    gpu = logits.device.type == "cuda"
    wait, trigger = dependency_flags(logits.device, "softmax_cluster", tuning)
    _softmax_cluster_kernel[(rows,)](logits, logits.stride(0), out, out.stride(0), temperatures.reshape(rows),
                                     vocab, CTAS=ctas, SPAN=span, WAIT=wait, TRIGGER=trigger, GPU=gpu,
                                     num_warps=warps, **({"num_ctas": ctas} if gpu else {}),
                                     **({"launch_pdl": True} if wait else {}), enable_fp_fusion=False)


def _launch_two_pass(logits, temperatures, out, tuning: Tuning) -> None:
    rows, vocab = logits.shape
    p = softmax_plan(rows, vocab, logits.device, tuning)
    c = p.config
    part_max = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    part_sum = torch.empty((rows, p.chunks), dtype=torch.float32, device=logits.device)
    temps = temperatures.reshape(rows)
    grid = (rows * p.chunks,)
    pdl = grid_dependency_control(logits.device)
    wait, trigger = dependency_flags(logits.device, "softmax_partials", tuning)
    _softmax_partials_kernel[grid](logits, logits.stride(0), temps, part_max, part_sum, vocab, p.chunk, p.chunks,
                                   BLOCK=c.block, WAIT=wait, TRIGGER=pdl, GPU=p.gpu, num_warps=c.warps,
                                   enable_fp_fusion=False, **({"launch_pdl": True} if wait else {}))
    _softmax_normalize_kernel[grid](logits, logits.stride(0), out, out.stride(0), temps, part_max, part_sum, rows,
                                    vocab, p.chunk, p.chunks, BLOCK=p.normalize_block, CHUNKS_P2=p.chunks_p2,
                                    WAIT=pdl, TRIGGER=trigger, GPU=p.gpu, num_warps=c.warps,
                                    enable_fp_fusion=False, **({"launch_pdl": True} if pdl else {}))


def launch_softmax(logits: torch.Tensor, temperatures: torch.Tensor, out: torch.Tensor, tuning: Tuning) -> None:
    """Write softmax(logits / t) into `out` (which may be `logits`), with the kernels the plan picks here."""
    cluster = cluster_softmax_geometry(*logits.shape, logits.device, tuning)
    if cluster is not None:
        try:
            _launch_cluster(logits, temperatures, out, *cluster, tuning)
            return
        except Exception as exc:  # e.g. a Triton that cannot build it, or a partition too small for the cluster
            KERNEL_FAILURES.record(CLUSTER_SOFTMAX, exc, "the two-pass softmax kernels")
    try:
        _launch_two_pass(logits, temperatures, out, tuning)
    except Exception as exc:
        if not grid_dependency_control(logits.device):
            raise
        KERNEL_FAILURES.record(DEPENDENT_LAUNCH, exc, "plain launches")  # e.g. a driver without PDL
        _launch_two_pass(logits, temperatures, out, tuning)
