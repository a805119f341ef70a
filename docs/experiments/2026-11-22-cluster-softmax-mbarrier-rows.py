# Frozen experiment, kept as it ran on the H200 on 2026-11-22 (then tools/cluster_softmax_mbarrier_and_rows.py); not
# maintained and not imported by tests. Its private kernels and the hotfuse API it calls are those of that day, as are
# the paths and names it mentions (tools/..., OUT/...json), so it may no longer run against today's code. Its data:
# docs/experiments/2026-11-22-cluster-softmax-mbarrier-rows.json; the write-up:
# docs/experiments/2026-11-22-cluster-softmax-mbarrier-rows.md.
"""Two ideas for the cluster softmax's exchange, timed against the shipped kernel.

1. Does a cluster that softmaxes several rows in turn, reading the next row while it waits at the barrier for the
current one, beat one row per cluster? One thread-block cluster of CTAS CTAs (Triton num_ctas) handles ROWS
consecutive rows; per row every CTA holds one span in registers, publishes the span's (max, sum) through global
memory and meets the others at the hardware cluster barrier, split into arrive and wait:
  PIPE=1: the next row's loads are issued between this row's arrive and wait, so they are in flight while the
          barrier completes and while this row's probabilities are written;
  PIPE=0: the next row's loads are issued at the top of the iteration (all rows' loads up front).
ROWS=1 is the kernel that shipped until then.

2. The spans' (max, sum) pushed through distributed shared memory with st.async, each CTA waiting on an mbarrier of
its own for the 16 partials (no cluster barrier and no fence between the local reduction and the writes; the only
cluster barrier is split around the loads, so that every CTA's mbarrier is initialised before anyone pushes). The
exchange buffer is a static .shared array declared in the inline PTX, apart from Triton's own scratch. END=1 adds a
cluster barrier before exit (arrive after pushing, wait after the writes).

Times each against the shipped temperature_softmax (same harness as `hotfuse bench`). Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/cluster_softmax_mbarrier_and_rows.py bash ci/gpu_run.sh OUT
Writes OUT/cluster-softmax-rows.json (kept as docs/benchmarks/cluster-softmax-mbarrier-rows-h200.json).
The mbarrier exchange (END=1, with the arrive moved after the pull) is what hotfuse.kernels.sampling ships since."""
import json, sys, time
import triton, triton.language as tl
from triton.language.extra import libdevice
try:
    import torch
except ImportError:  # offline compile only
    torch = None


@triton.jit
def _arrive(token):
    return tl.inline_asm_elementwise("barrier.cluster.arrive.release.aligned;\n\tmov.b32 $0, $1;",
                                     "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _wait(token):
    return tl.inline_asm_elementwise("barrier.cluster.wait.acquire.aligned;\n\tmov.b32 $0, $1;",
                                     "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _load_row(logits_ptr, row_stride, temp_ptr, row, cols, vocab):
    inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
    return tl.load(logits_ptr + row.to(tl.int64) * row_stride + cols, mask=cols < vocab,
                   other=float("-inf")).to(tl.float32) * inv_t


@triton.jit
def _rows_softmax(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr, part_ptr, vocab,
                  CTAS: tl.constexpr, SPAN: tl.constexpr, ROWS: tl.constexpr, PIPE: tl.constexpr):
    first = tl.program_id(0) * ROWS
    k = tl.arange(0, CTAS)
    cols = k[:, None] * SPAN + tl.arange(0, SPAN)[None, :]
    every = tl.arange(0, CTAS)[None, :] + 0 * k[:, None]
    x = _load_row(logits_ptr, row_stride, temp_ptr, first, cols, vocab)
    for i in tl.static_range(ROWS):
        row = first + i
        if not PIPE:
            if i + 1 < ROWS:
                x_next = _load_row(logits_ptr, row_stride, temp_ptr, row + 1, cols, vocab)
        m = tl.max(x, axis=1)
        e = libdevice.fast_expf(x - tl.where(m == float("-inf"), 0.0, m)[:, None])
        s = tl.sum(e, axis=1)
        part = part_ptr + row * (2 * CTAS)
        tl.store(part + k, m)
        tl.store(part + CTAS + k, s)
        token = _arrive(row)
        if PIPE:
            if i + 1 < ROWS:
                x_next = _load_row(logits_ptr, row_stride, temp_ptr, token + 1, cols, vocab)
        after = _wait(token) - row
        pm = tl.load(part + every + after, cache_modifier=".cg")
        ps = tl.load(part + CTAS + every + after, cache_modifier=".cg")
        big = tl.max(pm, axis=1)
        total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, libdevice.fast_expf(pm - big[:, None])), axis=1)
        scale = tl.where(m == float("-inf"), 0.0, libdevice.fast_expf(m - big)) / total
        tl.store(out_ptr + row.to(tl.int64) * out_row_stride + cols,
                 (e * scale[:, None]).to(out_ptr.dtype.element_ty), mask=cols < vocab)
        if i + 1 < ROWS:
            x = x_next


@triton.jit
def _xchg_init(token):
    """Thread 0 initialises this CTA's mbarrier, expecting 16 partials of 8 bytes; then every thread arrives
    (relaxed) at the cluster barrier whose wait, in _push, orders every init before any push."""
    return tl.inline_asm_elementwise(
        ".shared .align 16 .b8 hf_xchg[144];\n\t"
        "{\n\t.reg .pred p;\n\t.reg .u32 t, a;\n\tmov.u32 t, %tid.x;\n\tsetp.eq.u32 p, t, 0;\n\t"
        "mov.u32 a, hf_xchg;\n\t"
        "@p mbarrier.init.shared::cta.b64 [a], 1;\n\t"
        "@p mbarrier.arrive.expect_tx.shared::cta.b64 _, [a], 128;\n\t"
        "fence.mbarrier_init.release.cluster;\n\t"
        "barrier.cluster.arrive.relaxed.aligned;\n\t}\n\tmov.b32 $0, $1;",
        "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _push(m, s, token):
    """Thread t < 16 pushes this CTA's (m, s) into slot <this CTA's rank> of CTA t, completing 8 bytes of t's mbarrier."""
    return tl.inline_asm_elementwise(
        "{\n\t.reg .pred p;\n\t.reg .u32 t, r, a, b, ra, rb;\n\t"
        "barrier.cluster.wait.aligned;\n\t"
        "mov.u32 t, %tid.x;\n\tsetp.lt.u32 p, t, 16;\n\t"
        "mov.u32 r, %cluster_ctarank;\n\t"
        "mov.u32 b, hf_xchg;\n\tmad.lo.u32 a, r, 8, b;\n\tadd.u32 a, a, 16;\n\t"
        "@p mapa.shared::cluster.u32 ra, a, t;\n\t@p mapa.shared::cluster.u32 rb, b, t;\n\t"
        "@p st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.f32 [ra], {$1, $2}, [rb];\n\t}\n\t"
        "mov.b32 $0, $3;",
        "=r,f,f,r", [m, s, token], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _pull(j):
    """Wait until all 16 partials have landed in this CTA's shared memory, then read slot j."""
    return tl.inline_asm_elementwise(
        "{\n\t.reg .pred p;\n\t.reg .u32 b, a;\n\tmov.u32 b, hf_xchg;\n\t"
        "WAIT_${:uid}:\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [b], 0;\n\t@!p bra WAIT_${:uid};\n\t"
        "mad.lo.u32 a, $2, 8, b;\n\tadd.u32 a, a, 16;\n\tld.shared.v2.f32 {$0, $1}, [a];\n\t}",
        "=f,=f,r", [j], dtype=(tl.float32, tl.float32), is_pure=False, pack=1)


@triton.jit
def _end_arrive(token):
    return tl.inline_asm_elementwise("barrier.cluster.arrive.relaxed.aligned;\n\tmov.b32 $0, $1;",
                                     "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _dsmem_softmax(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr, vocab,
                   CTAS: tl.constexpr, SPAN: tl.constexpr, END: tl.constexpr):
    row = tl.program_id(0)
    ready = _xchg_init(row)
    k = tl.arange(0, CTAS)
    cols = k[:, None] * SPAN + tl.arange(0, SPAN)[None, :]
    x = _load_row(logits_ptr, row_stride, temp_ptr, row, cols, vocab)
    m = tl.max(x, axis=1)
    e = libdevice.fast_expf(x - tl.where(m == float("-inf"), 0.0, m)[:, None])
    s = tl.sum(e, axis=1)
    pushed = _push(m, s, ready + 0 * k)
    if END:
        pushed = _end_arrive(pushed)
    j = tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None]
    pm, ps = _pull(j)
    big = tl.max(pm, axis=1)
    total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, libdevice.fast_expf(pm - big[:, None])), axis=1)
    scale = tl.where(m == float("-inf"), 0.0, libdevice.fast_expf(m - big)) / total
    tl.store(out_ptr + row.to(tl.int64) * out_row_stride + cols, (e * scale[:, None]).to(out_ptr.dtype.element_ty),
             mask=cols < vocab)
    if END:
        _wait(row)


def launch_dsmem(logits, temps, out, ctas, warps, end):
    b, v = logits.shape
    span = triton.next_power_of_2(triton.cdiv(v, ctas))
    return _dsmem_softmax[(b,)](logits, logits.stride(0), out, out.stride(0), temps, v, CTAS=ctas, SPAN=span, END=end,
                                num_warps=warps, num_ctas=ctas, enable_fp_fusion=False)


def launch(logits, temps, out, part, ctas, warps, rows_per, pipe):
    b, v = logits.shape
    span = triton.next_power_of_2(triton.cdiv(v, ctas))
    return _rows_softmax[(b // rows_per,)](logits, logits.stride(0), out, out.stride(0), temps, part, v, CTAS=ctas,
                                           SPAN=span, ROWS=rows_per, PIPE=pipe, num_warps=warps, num_ctas=ctas,
                                           enable_fp_fusion=False)


def variants(b, v):
    """(name, fields, launch(logits, out)) for every variant timed at [b, v]."""
    out = []
    ctas = 16
    for warps in (8, 16):
        for end in (0, 1):
            out.append((f"dsmem e{end} w{warps}", {"exchange": "dsmem", "end_barrier": end, "warps": warps},
                        lambda x, y, t, warps=warps, end=end: launch_dsmem(x, t, y, ctas, warps, end)))
        for rows_per in (1, 2, 4):
            if b % rows_per or (rows_per > 1 and b // rows_per < 4):
                continue
            for pipe in ((0,) if rows_per == 1 else (1, 0)):
                part = torch.empty(b, 2 * ctas, device="cuda")
                out.append((f"r{rows_per}p{pipe} w{warps}",
                            {"exchange": "global", "rows_per_cluster": rows_per, "pipe": pipe, "warps": warps},
                            lambda x, y, t, warps=warps, rows_per=rows_per, pipe=pipe, part=part:
                                launch(x, t, y, part, ctas, warps, rows_per, pipe)))
    return out


def main(out_dir):
    from hotfuse.bench import time_in_graph
    from hotfuse.kernels.sampling import temperature_softmax
    print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name(), flush=True)
    rows = []
    shapes = [(16, 128256), (4, 262144), (64, 128256), (4, 128256), (1, 128256), (16, 262144), (256, 128256)]
    for b, v in shapes:
        g = torch.Generator(device="cuda").manual_seed(b * 7919 + v)
        logits = torch.randn(b, v, device="cuda", generator=g) * 4
        logits[0, : v // 3] = float("-inf")  # a masked third: one CTA's span is all -inf
        temps = torch.rand(b, 1, device="cuda", generator=g) * 1.5 + 0.25
        ref = torch.softmax(logits.double() / temps.double(), dim=-1)
        work = logits.clone()
        shipped = time_in_graph(lambda: temperature_softmax(work, temps, out=work))
        rows.append({"B": b, "V": v, "kernel": "shipped", "us": shipped})
        line = [f"shipped {shipped:.2f}"]
        for name, fields, run in variants(b, v):
            try:
                out = torch.empty_like(logits)
                k = run(logits, out, temps)
                torch.cuda.synchronize()
                err = (out.double() - ref).abs().max().item()
                w = logits.clone()
                run(w, w, temps)
                again = logits.clone()
                run(again, again, temps)
                same = bool(torch.equal(w, again)) and bool(torch.equal(w, out))
                us = time_in_graph(lambda: run(w, w, temps))
                rows.append({"B": b, "V": v, **fields, "us": us, "err": err, "repeatable": same,
                             "regs": k.n_regs, "spills": k.n_spills})
                line.append(f"{name} {us:.2f} (err {err:.1e}{'' if same else ' NOT REPEATABLE'}"
                            f"{', spills' if k.n_spills else ''})")
            except Exception as exc:
                rows.append({"B": b, "V": v, **fields, "error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
                line.append(f"{name} ERROR {type(exc).__name__}: {str(exc)[-200:]}")
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)
        with open(f"{out_dir}/cluster-softmax-rows.json", "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "triton": triton.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
