"""gemma4_route on a real CUDA GPU (device machine: `bash ci/gpu_run.sh OUT`)."""

from pathlib import Path

import pytest
import torch

from gpu.cuda_graphs import capture
from hotfuse.kernels.gemma4_router import gemma4_route, gemma4_route_reference, unsupported_reason

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device machine only)")]


def logits(t, e, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(t, e, device="cuda", generator=g) * 2
    if t >= 3:
        x[0, :] = 1.0                      # all tied
        x[1, 10:14] = 9.0                  # planted tie at the top
        x[2, 1:] = float("-inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t, e, k", [(1, 128, 8), (7, 64, 1), (1000, 128, 8), (4096, 256, 8),
                                     (65536, 128, 8), (250000, 128, 4), (333, 1024, 8), (0, 128, 8)])
def test_matches_float64_reference(dtype, t, e, k):
    x = logits(t, e, dtype, seed=t + e + k)
    scale = torch.rand(e, device="cuda") + 0.5
    assert unsupported_reason(x, scale) is None, "the kernels take these inputs"
    weights, ids = gemma4_route(x, scale, k)
    ref_w, ref_ids = gemma4_route_reference(x.double(), scale.double(), k)
    assert torch.equal(ids, ref_ids.to(torch.int32)), "experts (set and order) must match exactly"
    finite = torch.isfinite(ref_w)
    assert torch.equal(finite, torch.isfinite(weights))
    if t:
        assert (weights.double()[finite] - ref_w[finite]).abs().max().item() <= 2e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("e, layout", [(96, "contiguous"), (130, "contiguous"), (64, "contiguous"),
                                       (128, "odd stride"), (128, "2-byte offset"), (33, "contiguous")])
def test_both_kernels_agree_with_the_reference_on_every_layout(dtype, e, layout):
    t, k = 3000, 8
    x = logits(t, e + 1, dtype, seed=e)
    if layout == "odd stride":          # rows 2-byte aligned only: the tile kernel
        x = x[:, :e]
    elif layout == "2-byte offset":     # a view starting one element in
        x = x[:, 1:]
    else:
        x = x[:, :e].contiguous()
    x[5, 3] = float("nan")
    x[6, :] = float("-inf")
    x[6, 2] = float("nan")
    x[7, ::2] = -0.0
    x[7, 1::2] = 0.0
    scale = torch.rand(e, device="cuda") + 0.5
    from hotfuse.kernels.gemma4_router import lanes_kernel_takes
    assert lanes_kernel_takes(x, k) == (layout == "contiguous" and e % 2 == 0 and 32 < e <= 256)
    weights, ids = gemma4_route(x, scale, k)
    ref_w, ref_ids = gemma4_route_reference(x.double(), scale.double(), k)
    assert torch.equal(ids, ref_ids.to(torch.int32))
    finite = torch.isfinite(ref_w)
    assert torch.equal(finite, torch.isfinite(weights))
    assert (weights.double()[finite] - ref_w[finite]).abs().max().item() <= 2e-6


def test_bitwise_repeatable_and_graph_capturable():
    x = logits(16384, 128, torch.bfloat16, seed=3)
    scale = torch.rand(128, device="cuda") + 0.5
    first = gemma4_route(x, scale, 8)
    for _ in range(3):
        again = gemma4_route(x, scale, 8)
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    graph, (graph_w, graph_ids) = capture(lambda: gemma4_route(x, scale, 8))
    x.copy_(logits(16384, 128, torch.bfloat16, seed=4))
    scale.mul_(2.0)  # per_expert_scale is read live, also inside the graph
    graph.replay()
    torch.cuda.synchronize()
    w, ids = gemma4_route(x, scale, 8)
    assert torch.equal(graph_ids, ids) and torch.equal(graph_w, w)


def padding_mask(t, padded, slack=5):
    """A runner's padding buffer: longer than the batch, its last `padded` rows of the batch marked."""
    return torch.arange(t + slack, device="cuda") >= t - padded


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t, e, padded", [(8, 128, 3), (64, 256, 13), (4096, 128, 1000), (3000, 96, 1), (5, 7, 5)])
def test_padded_rows_get_the_skip_sentinel_in_the_same_launch(dtype, t, e, padded):
    x = logits(t, e, dtype, seed=t + padded)
    scale = torch.rand(e, device="cuda") + 0.5
    pad = padding_mask(t, padded)
    assert unsupported_reason(x, scale, pad) is None, "the kernels take the mask"
    weights, ids = gemma4_route(x, scale, 4, pad)
    assert (ids[t - padded:] == -1).all() and (weights[t - padded:] == 0).all()
    unpadded_w, unpadded_ids = gemma4_route(x, scale, 4)
    assert torch.equal(ids[:t - padded], unpadded_ids[:t - padded])
    assert torch.equal(weights[:t - padded], unpadded_w[:t - padded])
    ref_w, ref_ids = gemma4_route_reference(x.double(), scale.double(), 4, pad)
    assert torch.equal(ids, ref_ids)


def test_the_padding_mask_is_read_on_the_device_inside_a_graph():
    t, e = 512, 128
    x = logits(t, e, torch.bfloat16, seed=11)
    scale = torch.rand(e, device="cuda") + 0.5
    pad = padding_mask(t, 100)
    graph, (graph_w, graph_ids) = capture(lambda: gemma4_route(x, scale, 8, pad))
    pad.fill_(False)
    pad[t - 7:] = True  # the runner marks another batch's padding in the same buffer
    graph.replay()
    torch.cuda.synchronize()
    w, ids = gemma4_route(x, scale, 8, pad)
    assert torch.equal(graph_ids, ids) and torch.equal(graph_w, w)
    assert (graph_ids[t - 7:] == -1).all() and (graph_ids[:t - 7] >= 0).all()


VLLM_KERNEL = Path(__file__).resolve().parents[2] / ".upstream" / "vllm_gemma4_routing.py"


@pytest.mark.skipif(not VLLM_KERNEL.is_file(), reason="vLLM's kernel is vendored by ci/vendor_upstream.sh")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("t, e, padded", [(8, 128, 3), (64, 128, 13), (4096, 256, 1000), (1, 128, 0)])
def test_padded_and_unpadded_rows_match_vllms_own_kernel(dtype, t, e, padded):
    """vLLM 0.34's Triton routing kernel (vendored from its wheel) with the same padding mask: same ids, same
    weights within fp32 rounding, on padded and unpadded rows."""
    from hotfuse.bench import load_upstream_module

    vllm_kernel = load_upstream_module(str(VLLM_KERNEL), "vllm_gemma4_routing_034")
    x = logits(t, e, dtype, seed=7 * t + e)
    x[:3] = torch.randn(min(3, t), e, device="cuda").to(dtype)  # no planted ties: vLLM breaks them its own way
    scale = torch.rand(e, device="cuda") + 0.5
    pad = padding_mask(t, padded)
    vllm_w, vllm_ids = vllm_kernel.gemma4_fused_routing_kernel_triton(x, 8, scale, is_padding=pad)
    w, ids = gemma4_route(x, scale, 8, pad)
    assert torch.equal(torch.sort(ids, -1).values, torch.sort(vllm_ids.to(torch.int32), -1).values)
    order, vllm_order = ids.long().argsort(-1), vllm_ids.long().argsort(-1)
    assert (w.gather(-1, order) - vllm_w.float().gather(-1, vllm_order)).abs().max().item() <= 1e-6
    assert (ids[t - padded:] == -1).all() and (vllm_ids[t - padded:] == -1).all()
