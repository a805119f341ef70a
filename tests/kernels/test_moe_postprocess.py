"""topk_postprocess and gather_rows against their torch references, through the Triton interpreter."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hotfuse.kernels import moe_postprocess as M
from hotfuse.kernels.moe_postprocess import gather_rows, gather_rows_reference, topk_postprocess, topk_postprocess_reference


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("t", [0, 1, 37, 512])
@pytest.mark.parametrize("with_map", [False, True])
def test_topk_postprocess_matches_reference_at_every_padding_boundary(dtype, t, with_map):
    g = torch.Generator().manual_seed(t + 1)
    ids = torch.randint(0, 256, (t, 8), generator=g).to(dtype)
    if t > 2:
        ids[2, 5] = -1  # already padded ids stay -1
    table = torch.randperm(256, generator=g).to(torch.int32) if with_map else None
    for n in sorted({0, 1, max(t - 1, 0), t, t + 5, t // 2}):
        got = topk_postprocess(ids.clone(), table, torch.tensor(n))
        assert torch.equal(got, topk_postprocess_reference(ids.clone(), table, torch.tensor(n))), n
    if with_map:
        assert torch.equal(topk_postprocess(ids.clone(), table, None), topk_postprocess_reference(ids.clone(), table))
    assert M.topk_unsupported_reason(ids, table, torch.tensor(0)) is None, "the kernel takes these inputs"


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def test_nothing_to_do_makes_no_device_call(monkeypatch):
    ids = torch.randint(0, 64, (16, 8), dtype=torch.int32)

    def no_launch(*a, **k):
        raise AssertionError("the no-op path must not launch a kernel")

    monkeypatch.setattr(M, "_topk_postprocess_kernel", no_launch)
    with CountOps() as ops:
        out = topk_postprocess(ids, None, None)
    assert out is ids and ops.ops == []


def test_topk_postprocess_falls_back_for_float_ids():
    ids = torch.zeros(4, 2, dtype=torch.float32)
    assert M.topk_unsupported_reason(ids, None, torch.tensor(2)) == "dtype=float32"
    topk_postprocess(ids, None, torch.tensor(2))
    assert (ids[2:] == -1).all()


def mixed_buffers(slots=50):
    g = torch.Generator().manual_seed(0)
    return [
        torch.rand(slots, 4, generator=g),                                   # topk_p fp32 [slots, 4]
        torch.randint(0, 1000, (slots, 4), generator=g),                     # topk_index int64
        torch.randint(0, 1000, (slots,), generator=g).to(torch.int32),       # verified_id int32 [slots]
        None,                                                                # optional buffer absent
        torch.randn(slots, 257, generator=g).to(torch.float16),              # hidden, odd width: bytes
        torch.randn(slots, 3, 64, generator=g).to(torch.float16),            # 3-D rows
    ]


@pytest.mark.parametrize("b", [0, 1, 37, 50])
@pytest.mark.parametrize("idx_dtype", [torch.int32, torch.int64])
def test_gather_rows_matches_reference(b, idx_dtype):
    buffers = mixed_buffers()
    idx = torch.randint(0, 50, (b,), generator=torch.Generator().manual_seed(b)).to(idx_dtype)
    got = gather_rows(idx, *buffers)
    ref = gather_rows_reference(idx, *buffers)
    assert len(got) == len(buffers)
    for g_, r in zip(got, ref):
        assert (g_ is None and r is None) or (torch.equal(g_, r) and g_.dtype == r.dtype)
    assert M.gather_unsupported_reason(idx, *buffers) is None, "the kernel takes these inputs"


def test_gather_rows_falls_back_for_non_contiguous_buffers():
    idx = torch.tensor([1, 0])
    buf = torch.randn(8, 3).t()
    assert M.gather_unsupported_reason(idx, buf) == "buffer not contiguous"
    got = gather_rows(idx, buf)
    assert torch.equal(got[0], buf[idx])
