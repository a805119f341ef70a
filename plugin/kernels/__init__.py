"""Fused kernels with their torch references. Kernels never import an engine."""

from __future__ import annotations

import os

import torch

# float dtypes the Triton kernels read (math is fp32 inside)
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreting() -> bool:
    """True under Triton's interpreter (TRITON_INTERPRET=1): kernels run on CPU tensors, bf16 is broken."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def runs_here(t: torch.Tensor) -> bool:
    """Whether a Triton kernel can take a tensor on this device: CUDA, or CPU under the interpreter."""
    return t.device.type == "cuda" or (interpreting() and t.device.type == "cpu")


try:
    import triton  # noqa: F401  (optional: without it every kernel runs its torch reference)

    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False


def placement_reason(t: torch.Tensor, *, floats: bool = False) -> str | None:
    """Why no Triton kernel can take `t` here (None: one can). With floats=True, `t` must also be one of
    FLOAT_DTYPES, and not bf16 under the interpreter (broken there). The kernels' counted fallback reasons."""
    if not HAVE_TRITON:
        return "triton unavailable"
    if floats and t.dtype not in FLOAT_DTYPES:
        return f"dtype={str(t.dtype).removeprefix('torch.')}"
    if not runs_here(t):
        return f"device={t.device.type}"
    if floats and t.dtype == torch.bfloat16 and interpreting():
        return "dtype=bfloat16 under the Triton interpreter"
    return None
