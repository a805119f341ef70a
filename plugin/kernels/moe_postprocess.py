"""MoE top-k post-process and multi-buffer row gather: single-launch kernels with torch references.

topk_postprocess(topk_ids [T, K] int32/int64, logical_to_physical [E] | None, num_token_non_padded | None,
                 out=None)
    Maps every id through a static per-rank logical->physical table and writes -1 into the rows at or past
    `num_token_non_padded` (a one-element integer tensor, read on the device: never synced to the host).
    Writes `out` (default: in place into `topk_ids`) and returns it. With neither a table nor padding it returns at once: no device work, no
    launch, no compiled-function call (the engines' torch.compile helper pays ~5 us of guards for that).
    Ids that are already -1 stay -1.

gather_rows(indices [B], *buffers) -> tuple of buffer[indices] (None stays None)
    One launch gathers the same rows of several buffers of different widths and dtypes (rows are copied as
    raw 32-bit words, or bytes when a row is not a whole number of words). B = 0 gives empty results.

Both are deterministic, launch a fixed grid for a given shape, never synchronise with the host (they
capture in CUDA graphs), and run on the current stream. Inputs they do not take (`*_unsupported_reason` says why)
go to the torch reference; `run_topk_postprocess` / `run_gather_rows` are the kernels alone, for callers that
checked the inputs already (hotfuse.safety). This module knows nothing about engines and keeps no books.
"""

from __future__ import annotations

import torch

from hotfuse.kernels import placement_reason, tl, triton

MAX_GATHER_BUFFERS = 6


# ------------------------------------------------------------------------------------------------
# top-k post-process
# ------------------------------------------------------------------------------------------------

def topk_postprocess_reference(topk_ids, logical_to_physical=None, num_token_non_padded=None, out=None):
    out = topk_ids if out is None else out
    result = topk_ids
    if logical_to_physical is not None:
        mapped = logical_to_physical.to(topk_ids.dtype)[topk_ids.clamp_min(0).long()]
        result = torch.where(topk_ids >= 0, mapped, topk_ids)
    if num_token_non_padded is not None:
        rows = torch.arange(topk_ids.shape[0], device=topk_ids.device)
        result = result.masked_fill((rows >= num_token_non_padded.reshape(())).unsqueeze(1), -1)
    out.copy_(result)
    return out


if triton is not None:

    @triton.jit
    def _topk_postprocess_kernel(ids_ptr, out_ptr, map_ptr, n_ptr, numel, topk, HAS_MAP: tl.constexpr,
                                 HAS_PAD: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < numel
        ids = tl.load(ids_ptr + offs, mask=inside, other=0)
        if HAS_MAP:
            mapped = tl.load(map_ptr + tl.maximum(ids, 0), mask=inside & (ids >= 0), other=0)
            ids = tl.where(ids >= 0, mapped.to(ids.dtype), ids)
        if HAS_PAD:
            n = tl.load(n_ptr).to(tl.int64)
            ids = tl.where((offs // topk).to(tl.int64) >= n, -1, ids)
        tl.store(out_ptr + offs, ids, mask=inside)


TOPK_BLOCK = 1024


def topk_unsupported_reason(topk_ids: torch.Tensor, logical_to_physical: torch.Tensor | None = None,
                            num_token_non_padded: torch.Tensor | None = None,
                            out: torch.Tensor | None = None) -> str | None:
    """Why the kernel cannot take these inputs, or None when it can (nothing to do: None, the kernel does nothing)."""
    if logical_to_physical is None and num_token_non_padded is None:
        return None
    reason = placement_reason(topk_ids)
    if reason is None and (topk_ids.dim() != 2 or not topk_ids.is_contiguous()
                           or (out is not None and (out.shape != topk_ids.shape or out.dtype != topk_ids.dtype
                                                    or not out.is_contiguous()))):
        reason = "non-contiguous or not [T, K] ids"
    if reason is None and topk_ids.dtype not in (torch.int32, torch.int64):
        reason = f"dtype={str(topk_ids.dtype).removeprefix('torch.')}"
    return reason


def run_topk_postprocess(topk_ids: torch.Tensor, logical_to_physical: torch.Tensor | None = None,
                         num_token_non_padded: torch.Tensor | None = None, *,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """The kernel on inputs it takes (`topk_unsupported_reason(...)` is None)."""
    if logical_to_physical is None and num_token_non_padded is None:
        return topk_ids
    out = topk_ids if out is None else out
    numel = topk_ids.numel()
    if numel:
        dummy = topk_ids  # unused pointer slots still need a tensor
        _topk_postprocess_kernel[(triton.cdiv(numel, TOPK_BLOCK),)](
            topk_ids, out, logical_to_physical if logical_to_physical is not None else dummy,
            num_token_non_padded if num_token_non_padded is not None else dummy, numel, topk_ids.shape[1],
            HAS_MAP=logical_to_physical is not None, HAS_PAD=num_token_non_padded is not None, BLOCK=TOPK_BLOCK)
    return out


def topk_postprocess(topk_ids: torch.Tensor, logical_to_physical: torch.Tensor | None = None,
                     num_token_non_padded: torch.Tensor | None = None, *,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """See the module docstring. Nothing to do: returns `topk_ids` untouched, with no device work."""
    if topk_unsupported_reason(topk_ids, logical_to_physical, num_token_non_padded, out) is not None:
        return topk_postprocess_reference(topk_ids, logical_to_physical, num_token_non_padded, out)
    return run_topk_postprocess(topk_ids, logical_to_physical, num_token_non_padded, out=out)


# ------------------------------------------------------------------------------------------------
# multi-buffer row gather
# ------------------------------------------------------------------------------------------------

def gather_rows_reference(indices, *buffers):
    return tuple(None if b is None else b[indices] for b in buffers)


def _words(t: torch.Tensor) -> torch.Tensor:
    """A [rows, n] view of raw words: int32 when each row is whole 32-bit words, else bytes."""
    flat = t.reshape(t.shape[0], -1)
    row_bytes = flat.shape[1] * flat.element_size()
    if row_bytes % 4 == 0 and flat.data_ptr() % 4 == 0:
        return flat.view(torch.uint8).view(torch.int32) if flat.element_size() != 4 else flat.view(torch.int32)
    return flat.view(torch.uint8)


if triton is not None:

    @triton.jit
    def _copy_block(src_ptr, dst_ptr, width, src_row, dst_row, start, BLOCK: tl.constexpr):
        cols = start + tl.arange(0, BLOCK)
        keep = cols < width
        v = tl.load(src_ptr + src_row.to(tl.int64) * width + cols, mask=keep)
        tl.store(dst_ptr + dst_row.to(tl.int64) * width + cols, v, mask=keep)

    @triton.jit
    def _gather_rows_kernel(idx_ptr, s0, d0, w0, s1, d1, w1, s2, d2, w2, s3, d3, w3, s4, d4, w4, s5, d5, w5,
                            NUM: tl.constexpr, BLOCK: tl.constexpr):
        # program (row, block): copies words [block * BLOCK, (block + 1) * BLOCK) of that row of every buffer
        row = tl.program_id(0)
        start = tl.program_id(1) * BLOCK
        src = tl.load(idx_ptr + row)
        _copy_block(s0, d0, w0, src, row, start, BLOCK)
        if NUM > 1:
            _copy_block(s1, d1, w1, src, row, start, BLOCK)
        if NUM > 2:
            _copy_block(s2, d2, w2, src, row, start, BLOCK)
        if NUM > 3:
            _copy_block(s3, d3, w3, src, row, start, BLOCK)
        if NUM > 4:
            _copy_block(s4, d4, w4, src, row, start, BLOCK)
        if NUM > 5:
            _copy_block(s5, d5, w5, src, row, start, BLOCK)


GATHER_BLOCK = 1024  # 32-bit words (or bytes) per program and buffer


def _check_gather_contract(indices: torch.Tensor, buffers) -> list[torch.Tensor]:
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int32, torch.int64) or indices.dim() != 1:
        raise TypeError(f"indices must be a 1-D int32/int64 tensor, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)} {tuple(getattr(indices, 'shape', ()))}")
    present = [b for b in buffers if b is not None]
    if any(b.dim() == 0 or b.device != indices.device for b in present):
        raise ValueError("every buffer must have a row dimension and live on the indices' device")
    return present


def gather_unsupported_reason(indices: torch.Tensor, *buffers: torch.Tensor | None) -> str | None:
    """Why the kernel cannot take these inputs, or None when it can. Inputs outside the contract raise TypeError /
    ValueError."""
    present = _check_gather_contract(indices, buffers)
    if not present:
        return None
    reason = placement_reason(indices)
    if reason is None and len(present) > MAX_GATHER_BUFFERS:
        reason = f"more than {MAX_GATHER_BUFFERS} buffers"
    if reason is None and indices.stride(0) != 1:
        reason = "indices not contiguous"
    if reason is None and any(not b.is_contiguous() for b in present):
        reason = "buffer not contiguous"
    return reason


def run_gather_rows(indices: torch.Tensor, *buffers: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The kernel on inputs it takes (`gather_unsupported_reason(...)` is None)."""
    present = _check_gather_contract(indices, buffers)
    if not present:
        return tuple(buffers)
    outs = [torch.empty((indices.shape[0],) + b.shape[1:], dtype=b.dtype, device=b.device) for b in present]
    if indices.shape[0]:
        slots, widest = [], 1
        for src, dst in zip(present, outs):
            s, d = _words(src), _words(dst)
            slots += [s, d, s.shape[1]]
            widest = max(widest, s.shape[1])
        slots += [present[0], outs[0], 0] * (MAX_GATHER_BUFFERS - len(present))  # unused slots
        grid = (indices.shape[0], triton.cdiv(widest, GATHER_BLOCK))
        _gather_rows_kernel[grid](indices, *slots, NUM=len(present), BLOCK=GATHER_BLOCK)
    it = iter(outs)
    return tuple(None if b is None else next(it) for b in buffers)


def gather_rows(indices: torch.Tensor, *buffers: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """buffer[indices] for every buffer, in one launch. See the module docstring."""
    if gather_unsupported_reason(indices, *buffers) is not None:
        return gather_rows_reference(indices, *buffers)
    return run_gather_rows(indices, *buffers)
