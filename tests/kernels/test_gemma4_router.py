"""gemma4_route against its torch reference through the Triton interpreter (fp32 / fp16)."""

import pytest
import torch

from hotfuse.kernels.gemma4_router import gemma4_route, gemma4_route_reference, unsupported_reason

TOLERANCE = {torch.float32: 1e-6, torch.float16: 1e-6}  # weights are fp32 math in both: same rounding


def logits_with_traps(t, e, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, e, generator=g) * 3
    if t >= 4:
        x[1, :] = 0.5                       # every expert tied: lowest ids win
        x[2, e // 3: e // 3 + 4] = 7.0      # a planted four-way tie at the top
        x[3, : e - 2] = float("-inf")       # only two finite experts
    if t >= 6:
        x[4] = x[4] * 1e4                   # very large logits (fp16 saturates to inf: kept finite in fp32)
        x[5, 0] = float("nan")              # NaN never wins
    return x.to(dtype) if dtype != torch.float16 else x.clamp(-6e4, 6e4).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("t", [0, 1, 7, 64, 1000])
@pytest.mark.parametrize("e", [64, 128, 256])
@pytest.mark.parametrize("k", [1, 4, 8])
def test_matches_reference(dtype, t, e, k):
    x = logits_with_traps(t, e, dtype, seed=t * 1009 + e * 7 + k)
    scale = torch.rand(e) + 0.5
    assert unsupported_reason(x, scale) is None, "the kernels take these inputs"
    weights, ids = gemma4_route(x, scale, k)
    ref_w, ref_ids = gemma4_route_reference(x, scale, k)
    assert weights.dtype == torch.float32 and ids.dtype == torch.int32 and ids.shape == (t, k)
    assert torch.equal(torch.sort(ids, -1).values, torch.sort(ref_ids, -1).values), "expert sets differ"
    assert torch.equal(ids, ref_ids), "order (descending logit, lower id on ties) differs"
    finite = torch.isfinite(ref_w)
    assert torch.equal(finite, torch.isfinite(weights))
    if t:
        assert (weights[finite] - ref_w[finite]).abs().max().item() <= TOLERANCE[dtype]


def test_ties_go_to_the_lowest_expert_id():
    x = torch.zeros(3, 128)
    x[0, [5, 9, 77, 100]] = 2.0
    _, ids = gemma4_route(x, torch.ones(128), 3)
    assert ids.tolist() == [[5, 9, 77], [0, 1, 2], [0, 1, 2]]


def test_per_expert_scale_is_read_on_every_call():
    x = torch.randn(4, 64)
    scale = torch.ones(64)
    w1, ids = gemma4_route(x, scale, 2)
    scale.mul_(3.0)  # in-place weight update, as a reload would do
    w2, ids2 = gemma4_route(x, scale, 2)
    assert torch.equal(ids, ids2) and torch.allclose(w2, 3 * w1)


def test_weights_are_softmax_of_chosen_logits_times_scale():
    x = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w, ids = gemma4_route(x, scale, 2)
    p = torch.softmax(torch.tensor([3.0, 2.0]), -1)
    assert ids.tolist() == [[1, 2]]
    assert torch.allclose(w, torch.stack([p[0] * 2.0, p[1] * 3.0])[None])


@pytest.mark.parametrize("make, reason", [
    (lambda: (torch.randn(3, 1100), torch.ones(1100)), "experts=1100 > 1024"),
    (lambda: (torch.randn(64, 3).t(), torch.ones(64)), "non-contiguous experts"),
    (lambda: (torch.randn(3, 64, dtype=torch.float64), torch.ones(64)), "dtype=float64"),
    (lambda: (torch.randn(3, 64, dtype=torch.bfloat16), torch.ones(64)), "dtype=bfloat16 under the Triton interpreter"),
])
def test_unhandled_inputs_run_the_reference_with_a_reason(make, reason):
    x, scale = make()
    assert unsupported_reason(x, scale) == reason  # what hotfuse.safety counts the fallback under
    w, ids = gemma4_route(x, scale, 4)
    rw, rids = gemma4_route_reference(x, scale, 4)
    assert torch.equal(ids, rids) and torch.allclose(w, rw)


@pytest.mark.parametrize("x, scale, k", [
    (torch.randn(2, 3, 4), torch.ones(4), 2),
    (torch.randn(2, 8), torch.ones(7), 2),
    (torch.randn(2, 8), torch.ones(8), 0),
    (torch.randn(2, 8), torch.ones(8), 9),
])
def test_contract_violations_raise(x, scale, k):
    with pytest.raises(ValueError):
        gemma4_route(x, scale, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_nan_ranks_with_minus_infinity_and_ties_go_to_the_lowest_id(dtype):
    # a NaN must count exactly as -inf: never above it, tied with it (lowest id first)
    x = torch.full((3, 16), float("-inf"))
    x[0, 5], x[0, 9] = float("nan"), 2.0
    x[1, 0], x[1, 3] = float("nan"), float("nan")
    x[2, :] = float("nan")
    x = x.to(dtype)
    scale = torch.rand(16) + 0.5
    _, ids = gemma4_route(x, scale, 4)
    _, ref_ids = gemma4_route_reference(x, scale, 4)
    assert ids.tolist() == ref_ids.tolist() == [[9, 0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("e, layout, lanes", [
    (128, "contiguous", True), (96, "contiguous", True), (130, "contiguous", True), (64, "contiguous", True),
    (256, "contiguous", True), (33, "contiguous", False), (300, "contiguous", False),
    (128, "odd stride", False), (128, "2-byte offset", False)])
def test_both_kernels_match_the_reference_on_every_layout(e, layout, lanes):
    """16-bit logits in 4-byte aligned rows with 33-256 (even) experts take the sorted-lanes kernel; any other
    layout the tile kernel. Both rank NaN as -inf, tie -0 with +0 and break ties to the lowest id."""
    from hotfuse.kernels.gemma4_router import lanes_kernel_takes
    x = logits_with_traps(40, e + 1, torch.float16, seed=e)
    x[6, ::2] = -0.0
    x[6, 1::2] = 0.0
    x[7, :] = float("-inf")
    x[7, [1, 4]] = float("nan")
    x = {"contiguous": x[:, :e].contiguous(), "odd stride": x[:, :e], "2-byte offset": x[:, 1:]}[layout]
    scale = torch.rand(e) + 0.5
    assert lanes_kernel_takes(x, 8) == lanes
    weights, ids = gemma4_route(x, scale, 8)
    ref_w, ref_ids = gemma4_route_reference(x, scale, 8)
    assert torch.equal(ids, ref_ids)
    finite = torch.isfinite(ref_w)
    assert torch.equal(finite, torch.isfinite(weights))
    assert (weights[finite] - ref_w[finite]).abs().max().item() <= TOLERANCE[torch.float16]


def test_lanes_kernel_redoes_a_program_only_when_a_nan_could_matter():
    """Keys are first built without the NaN rule: a positive NaN would then outrank every expert. The
    kernel must notice and redo the program, giving exactly the reference's picks."""
    x = torch.randn(5, 128).half()
    x[2, 17] = float("nan")                 # positive NaN pattern
    x[3, 40] = -float("nan")                # negative NaN pattern: below -inf before the redo
    x[3, 8:] = float("-inf")                # ...and picks reach -inf, where NaN must tie with -inf
    scale = torch.rand(128) + 0.5
    _, ids = gemma4_route(x, scale, 12)
    _, ref_ids = gemma4_route_reference(x, scale, 12)
    assert torch.equal(ids, ref_ids)
    assert 17 not in ids[2].tolist()


@pytest.mark.parametrize("dtype, e", [(torch.float32, 128), (torch.float16, 128), (torch.float16, 48),
                                      (torch.float32, 7)], ids=["fp32-tile", "fp16-lanes", "fp16-lanes-odd", "tiny"])
def test_padded_rows_get_id_minus_one_and_weight_zero_in_the_launch(dtype, e):
    t, k = 37, min(8, e)
    x = logits_with_traps(t, e, dtype, seed=e)
    scale = torch.rand(e) + 0.5
    pad = torch.zeros(t + 3, dtype=torch.bool)  # a runner's buffer is longer than the batch
    pad[30:] = True
    pad[3] = True
    assert unsupported_reason(x, scale, pad) is None, "the kernels take the mask"
    weights, ids = gemma4_route(x, scale, k, pad)
    padded = pad[:t]
    assert (ids[padded] == -1).all() and (weights[padded] == 0).all()
    plain_w, plain_ids = gemma4_route(x, scale, k)
    assert torch.equal(ids[~padded], plain_ids[~padded]) and torch.equal(weights[~padded], plain_w[~padded])
    ref_w, ref_ids = gemma4_route_reference(x, scale, k, pad)
    assert torch.equal(ids, ref_ids) and (weights - ref_w).abs().max().item() <= TOLERANCE[dtype]


def test_a_padding_mask_the_kernel_cannot_read_goes_to_the_reference():
    x, scale = torch.randn(5, 64), torch.rand(64) + 0.5
    mask = torch.tensor([0, 0, 1, 1, 1, 0], dtype=torch.uint8)
    assert unsupported_reason(x, scale, mask) == "is_padding not a contiguous bool tensor on the logits' device"
    weights, ids = gemma4_route(x, scale, 4, mask)
    assert (ids[2:5] == -1).all() and (ids[:2] >= 0).all()
    with pytest.raises(ValueError, match="is_padding must be"):
        gemma4_route(x, torch.rand(64) + 0.5, 4, torch.zeros(3, dtype=torch.bool))
