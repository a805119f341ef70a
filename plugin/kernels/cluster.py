"""Thread-block cluster helpers (NVIDIA Hopper and later), in inline PTX: the exchange of per-CTA partials through
distributed shared memory that the cluster kernels of the sampler share.

Each CTA owns a static shared buffer, declared in the PTX apart from Triton's own scratch: one mbarrier (8 bytes)
and one 8-byte slot per CTA of the cluster (at most 16, so 136 bytes). Every CTA pushes its pair of 32-bit values
into its slot in every CTA's buffer with st.async, which completes 8 bytes of the receiving CTA's mbarrier; a CTA
reads the pairs once its mbarrier has seen them all. No fence and no cluster-wide barrier sits between a CTA's
reduction and its use of the exchanged values: it waits only for the values themselves.

The two cluster barriers a kernel keeps are off that path: `exchange_init` arrives at one (its wait, in
`push_pair`, makes sure every CTA's mbarrier is initialised before anyone pushes into it), and `cluster_arrive` /
`cluster_wait` bracket the kernel's last writes so that no CTA exits while a push into it may be in flight.

Use, in a kernel launched with num_ctas=CTAS (the interpreter runs a cluster as one program and needs none of it):
    ready = exchange_init(row, CTAS)                   # first: shared memory only
    pushed = push_pair(a, b, ready + 0 * span, CTAS)   # a, b: [CTAS] float32, one per CTA
    a_all, b_all = pull_pairs(tl.arange(0, CTAS)[None, :] + (pushed - row)[:, None])
    received = cluster_arrive(row)
    ... writes ...
    cluster_wait(received)
"""

from __future__ import annotations

import torch

from hotfuse.kernels import nvidia_hopper_or_later, tl, triton

MAX_CTAS = 16  # slots in the exchange buffer


def clusters_run_on(device: torch.device) -> bool:
    """Whether cluster kernels can run on `device`: NVIDIA from Hopper on; the interpreter runs a cluster as one
    program."""
    return device.type == "cpu" or nvidia_hopper_or_later(device)


if triton is not None:

    @triton.jit
    def exchange_init(token, ctas):
        """Start of the kernel: thread 0 initialises this CTA's mbarrier to expect `ctas` pairs of 8 bytes, then
        every thread arrives (relaxed) at the cluster barrier whose wait is in push_pair. Returns token."""
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
    def push_pair(a, b, token, ctas):
        """Thread t < ctas pushes this CTA's (a, b) into slot <this CTA's rank> of CTA t. Returns token."""
        return tl.inline_asm_elementwise(
            "{\n\t.reg .pred p;\n\t.reg .u32 t, r, a, b, ra, rb;\n\t"
            "barrier.cluster.wait.aligned;\n\t"
            "mov.u32 t, %tid.x;\n\tsetp.lt.u32 p, t, $4;\n\t"
            "mov.u32 r, %cluster_ctarank;\n\t"
            "mov.u32 b, hotfuse_exchange;\n\tmad.lo.u32 a, r, 8, b;\n\tadd.u32 a, a, 8;\n\t"
            "@p mapa.shared::cluster.u32 ra, a, t;\n\t@p mapa.shared::cluster.u32 rb, b, t;\n\t"
            "@p st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.f32 [ra], {$1, $2}, [rb];\n\t}\n\t"
            "mov.b32 $0, $3;",
            "=r,f,f,r,r", [a, b, token, ctas], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def pull_pairs(slot):
        """Waits until every CTA's pair has landed in this CTA's buffer, then reads slot `slot`: (a, b)."""
        return tl.inline_asm_elementwise(
            "{\n\t.reg .pred p;\n\t.reg .u32 b, a;\n\tmov.u32 b, hotfuse_exchange;\n\t"
            "HOTFUSE_WAIT_${:uid}:\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [b], 0;\n\t"
            "@!p bra HOTFUSE_WAIT_${:uid};\n\t"
            "mad.lo.u32 a, $2, 8, b;\n\tadd.u32 a, a, 8;\n\tld.shared.v2.f32 {$0, $1}, [a];\n\t}",
            "=f,=f,r", [slot], dtype=(tl.float32, tl.float32), is_pure=False, pack=1)

    @triton.jit
    def cluster_arrive(token):
        return tl.inline_asm_elementwise("barrier.cluster.arrive.relaxed.aligned;\n\tmov.b32 $0, $1;",
                                         "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)

    @triton.jit
    def cluster_wait(token):
        return tl.inline_asm_elementwise("barrier.cluster.wait.aligned;\n\tmov.b32 $0, $1;",
                                         "=r,r", [token], dtype=tl.int32, is_pure=False, pack=1)
