# Frozen experiment, kept as it ran on the H200 on 2026-11-22 (then tools/cluster_softmax_modes.py); not maintained
# and not imported by tests. Its private kernels and the hotfuse API it calls are those of that day, as are the paths
# and names it mentions (tools/..., OUT/...json), so it may no longer run against today's code. Its data:
# docs/experiments/2026-11-22-cluster-softmax-modes.json; the write-up:
# docs/experiments/2026-11-22-cluster-softmax-modes.md.
"""What the cluster softmax's exchange costs: one thread-block cluster of CTAS CTAs per row (Triton num_ctas), CTA k
holding span k of the row in registers, with four exchanges of the spans' (max, sum):
  MODE 0: through global memory around one hardware cluster barrier (what hotfuse.kernels.sampling shipped before
          the mbarrier exchange of tools/cluster_softmax_mbarrier_and_rows.py);
  MODE 1: none (each span normalised by its own max and sum: a floor, not a softmax);
  MODE 2: a cluster barrier but no exchange (the barrier's cost: a floor, not a softmax);
  MODE 3: through distributed shared memory (every CTA pushes its partials into every CTA's shared memory
          between two cluster barriers; inline PTX against Triton's `global_smem`).
Times each against the shipped temperature_softmax (same harness as `hotfuse bench`). Run on the device machine:
    HOTFUSE_GPU_SCRIPT=tools/cluster_softmax_modes.py bash ci/gpu_run.sh OUT
Writes OUT/cluster-softmax.json. Needs a Triton that compiles num_ctas > 1 (3.6.0 does)."""
import json, sys, time
import triton, triton.language as tl
from triton.language.extra import libdevice
try:
    import torch
except ImportError:  # offline compile only
    torch = None


@triton.jit
def _cluster_sync(x):
    return tl.inline_asm_elementwise(
        "barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;\n\tmov.b32 $0, $1;",
        "=r,r", [x], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _push(value, target, offset):
    """Store value (f32) at byte offset `offset` of CTA `target`'s shared memory (of this cluster)."""
    return tl.inline_asm_elementwise(
        "{\n\t.reg .b32 a, r;\n\tmov.b32 a, global_smem;\n\tadd.u32 a, a, $3;\n\t"
        "mapa.shared::cluster.u32 r, a, $2;\n\tst.shared::cluster.f32 [r], $1;\n\tmov.b32 $0, 0;\n\t}",
        "=r,f,r,r", [value, target, offset], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _read_local(offset):
    return tl.inline_asm_elementwise(
        "{\n\t.reg .b32 a;\n\tmov.b32 a, global_smem;\n\tadd.u32 a, a, $1;\n\tld.shared.f32 $0, [a];\n\t}",
        "=f,r", [offset], dtype=tl.float32, is_pure=False, pack=1)


@triton.jit
def _cluster_softmax(logits_ptr, row_stride, out_ptr, out_row_stride, temp_ptr, part_ptr, vocab,
                     CTAS: tl.constexpr, SPAN: tl.constexpr, MODE: tl.constexpr):
    row = tl.program_id(0)
    inv_t = 1.0 / tl.load(temp_ptr + row).to(tl.float32)
    k = tl.arange(0, CTAS)
    cols = k[:, None] * SPAN + tl.arange(0, SPAN)[None, :]
    x = tl.load(logits_ptr + row.to(tl.int64) * row_stride + cols, mask=cols < vocab,
                other=float("-inf")).to(tl.float32) * inv_t
    m = tl.max(x, axis=1)
    e = libdevice.fast_expf(x - tl.where(m == float("-inf"), 0.0, m)[:, None])
    s = tl.sum(e, axis=1)
    if MODE == 0:
        part = part_ptr + row * (2 * CTAS)
        tl.store(part + k, m)
        tl.store(part + CTAS + k, s)
        token = _cluster_sync(row)
        j = tl.arange(0, CTAS)[None, :] + 0 * k[:, None] + token * 0
        pm = tl.load(part + j, cache_modifier=".cg")
        ps = tl.load(part + CTAS + j, cache_modifier=".cg")
    elif MODE == 3:
        j = tl.arange(0, CTAS)[None, :] + 0 * k[:, None]          # [CTAS (this CTA), CTAS (target)]
        mk = m[:, None] + 0.0 * j.to(tl.float32)
        sk = s[:, None] + 0.0 * j.to(tl.float32)
        slot = k[:, None] * 4 + 0 * j
        token = _cluster_sync(row)  # every CTA is done with its shared scratch before anyone writes into it
        d0 = _push(mk, j + token * 0, slot)
        d1 = _push(sk, j + token * 0, slot + 4 * CTAS)
        token2 = _cluster_sync(row)  # volatile asm: stays after the pushes (checked in the PTX)
        pm = _read_local(j * 4 + token2 * 0)
        ps = _read_local(j * 4 + 4 * CTAS + token2 * 0)
    else:
        if MODE == 2:
            m = m + 0.0 * _cluster_sync(row).to(tl.float32)
        j = tl.arange(0, CTAS)[None, :] + 0 * k[:, None]
        pm = tl.where(j == k[:, None], m[:, None], float("-inf"))
        ps = tl.where(j == k[:, None], s[:, None], 0.0)
    big = tl.max(pm, axis=1)
    total = tl.sum(ps * tl.where(pm == float("-inf"), 0.0, libdevice.fast_expf(pm - big[:, None])), axis=1)
    scale = tl.where(m == float("-inf"), 0.0, libdevice.fast_expf(m - big)) / total
    tl.store(out_ptr + row.to(tl.int64) * out_row_stride + cols, (e * scale[:, None]).to(out_ptr.dtype.element_ty),
             mask=cols < vocab)


def launch(logits, temps, out, part, ctas, warps, mode=0):
    b, v = logits.shape
    span = triton.next_power_of_2(triton.cdiv(v, ctas))
    return _cluster_softmax[(b,)](logits, logits.stride(0), out, out.stride(0), temps, part, v, CTAS=ctas, SPAN=span,
                                  MODE=mode, num_warps=warps, num_ctas=ctas, enable_fp_fusion=False)


def main(out_dir):
    from hotfuse.bench import time_in_graph
    from hotfuse.kernels.sampling import temperature_softmax
    print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name(), flush=True)
    rows = []
    shapes = [(16, 128256), (4, 262144), (64, 128256), (1, 128256), (4, 128256), (16, 262144), (1, 262144)]
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
        for mode in (0, 3, 2, 1):
            for ctas, warps in ((16, 4), (16, 8), (16, 16), (8, 8)):
                span = triton.next_power_of_2(triton.cdiv(v, ctas))
                if not 8 <= span // (warps * 32) <= 128:
                    continue
                try:
                    part = torch.empty(b, 2 * ctas, device="cuda")
                    out = torch.empty_like(logits)
                    k = launch(logits, temps, out, part, ctas, warps, mode)
                    torch.cuda.synchronize()
                    err = (out.double() - ref).abs().max().item()
                    w = logits.clone()
                    launch(w, temps, w, part, ctas, warps, mode)
                    again = logits.clone()
                    launch(again, temps, again, part, ctas, warps, mode)
                    same = bool(torch.equal(w, again))
                    us = time_in_graph(lambda: launch(w, temps, w, part, ctas, warps, mode))
                    rows.append({"B": b, "V": v, "kernel": "cluster", "mode": mode, "ctas": ctas, "warps": warps,
                                 "us": us, "err": err, "repeatable": same, "regs": k.n_regs, "spills": k.n_spills,
                                 "shared": k.metadata.shared})
                    line.append(f"m{mode}c{ctas}w{warps} {us:.2f} (err {err:.1e}{'' if same else ' NOT REPEATABLE'})")
                except Exception as exc:
                    rows.append({"B": b, "V": v, "kernel": "cluster", "mode": mode, "ctas": ctas, "warps": warps,
                                 "error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
                    line.append(f"m{mode}c{ctas}w{warps} ERROR {type(exc).__name__}: {str(exc)[-200:]}")
        print(f"B={b} V={v}: " + "; ".join(line), flush=True)
        with open(f"{out_dir}/cluster-softmax.json", "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "triton": triton.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
