"""topk_postprocess and gather_rows on a real CUDA GPU (device machine: `bash ci/gpu_run.sh OUT`)."""

import pytest
import torch

from gpu.cuda_graphs import capture
from hotfuse.kernels.moe_postprocess import gather_rows, gather_rows_reference, topk_postprocess, \
    topk_postprocess_reference

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device machine only)")]


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("t", [0, 1, 64, 512, 4096, 100000])
def test_topk_postprocess_matches_reference(dtype, t):
    ids = torch.randint(0, 256, (t, 8), device="cuda", dtype=dtype)
    table = torch.randperm(256, device="cuda").to(torch.int32)
    for n in {0, t // 3, t}:
        n_dev = torch.tensor(n, device="cuda")
        assert torch.equal(topk_postprocess(ids.clone(), table, n_dev),
                           topk_postprocess_reference(ids.clone(), table, n_dev))


def test_topk_postprocess_captures_in_a_graph_and_reads_the_pad_count_on_the_device():
    ids = torch.randint(0, 256, (512, 8), device="cuda", dtype=torch.int32)
    work = ids.clone()
    table = torch.randperm(256, device="cuda").to(torch.int32)
    n = torch.tensor(100, device="cuda")
    graph, _ = capture(lambda: topk_postprocess(work, table, n))
    work.copy_(ids)
    n.fill_(300)  # changed after capture: the replay must see it
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(work, topk_postprocess_reference(ids.clone(), table, torch.tensor(300, device="cuda")))


@pytest.mark.parametrize("b", [0, 1, 16, 256])
def test_gather_rows_matches_reference_and_captures(b):
    buffers = [torch.rand(1024, 4, device="cuda"), torch.randint(0, 9, (1024, 4), device="cuda"),
               torch.randint(0, 9, (1024,), device="cuda", dtype=torch.int32), None,
               torch.randn(1024, 4096, device="cuda").to(torch.bfloat16)]
    idx = torch.randint(0, 1024, (b,), device="cuda")
    got = gather_rows(idx, *buffers)
    for g_, r in zip(got, gather_rows_reference(idx, *buffers)):
        assert (g_ is None and r is None) or torch.equal(g_, r)
    if b:
        graph, captured = capture(lambda: gather_rows(idx, *buffers))
        idx.copy_(torch.randint(0, 1024, (b,), device="cuda"))
        graph.replay()
        torch.cuda.synchronize()
        for g_, r in zip(captured, gather_rows_reference(idx, *buffers)):
            assert (g_ is None and r is None) or torch.equal(g_, r)
