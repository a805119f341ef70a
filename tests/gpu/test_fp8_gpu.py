"""hotfuse's plain-torch static FP8 quant on a CUDA GPU: the same bytes as SGLang's own Triton static-quant
kernel (source vendored by `bash ci/vendor_upstream.sh` into .upstream/), eager and fused by inductor with
its producer. Device machine: `bash ci/gpu_run.sh OUT` (carrying .upstream)."""

from pathlib import Path

import pytest
import torch

from hotfuse.bench.qk_norm_fp8 import sglang_quant
from hotfuse.bench import load_upstream_module
from hotfuse.kernels.fp8 import static_fp8_quant

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device machine only)")]

UPSTREAM = Path(__file__).resolve().parents[2] / ".upstream" / "sglang_static_quant_fp8.py"
FP8, MAX = torch.float8_e4m3fn, 448.0


@pytest.fixture(scope="module")
def sglang_kernel():
    if not UPSTREAM.exists():
        pytest.fail("run `bash ci/vendor_upstream.sh` and carry .upstream to the GPU box")
    return sglang_quant(load_upstream_module(str(UPSTREAM), "upstream_sglang_static_quant_fp8"))


def inputs(t, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(t, n, device="cuda", generator=g) * 30
    x[0, :6] = torch.tensor([1e5, -1e5, 0.0, 448 * 0.02, 448 * 0.02 * 1.0001, 1e-9])
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("t, n", [(1, 128), (16, 4096), (4096, 4096), (333, 5120)])
@pytest.mark.parametrize("scale_value", [0.02, 1.0, 3.7e-3])
def test_same_bytes_as_sglangs_static_quant_kernel(sglang_kernel, dtype, t, n, scale_value):
    x = inputs(t, n, dtype, seed=t + n)
    scale = torch.tensor([scale_value], device="cuda")
    ours = static_fp8_quant(x, scale, FP8, -MAX, MAX)
    theirs = sglang_kernel(x, scale)
    assert torch.equal(ours.view(torch.uint8), theirs.view(torch.uint8))


@pytest.mark.parametrize("t", [16, 4096])
def test_fused_with_an_rmsnorm_by_inductor_the_bytes_do_not_change(sglang_kernel, t):
    g = torch.Generator(device="cuda").manual_seed(t)
    a = (torch.randn(t, 4096, device="cuda", generator=g) * 2).to(torch.bfloat16)
    w = 1 + 0.1 * torch.randn(4096, device="cuda", generator=g)
    scale = torch.tensor([0.01], device="cuda")

    def norm(a):
        af = a.float()
        return (af * torch.rsqrt(af.pow(2).mean(-1, keepdim=True) + 1e-6) * w).to(torch.bfloat16)

    def norm_and_quant(a):
        n = norm(a)
        return n, static_fp8_quant(n, scale, FP8, -MAX, MAX)

    # inductor fuses the quant into the norm's kernel; the bytes must be SGLang's quant of the very bf16 values
    # that kernel produced (compiled and eager norms may differ by a reduction order, which is not the quant's)
    n, fused = torch.compile(norm_and_quant, fullgraph=True)(a)
    unfused = sglang_kernel(n, scale)
    assert torch.equal(fused.view(torch.uint8), unfused.view(torch.uint8))
