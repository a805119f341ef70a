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
