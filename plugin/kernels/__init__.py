"""Fused kernels with their torch references. Kernels never import an engine, and keep no books: no fusion names,
no counters, no logger (hotfuse.safety counts and logs, knowing which fusion called).

This module is where the optional Triton import happens (`triton`, `tl`: None without Triton, and every kernel's
public function then answers with its torch reference), with the placement rules every kernel shares and the
run-time record of kernels that failed to build or launch in this process.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # optional: without it every kernel runs its torch reference
    triton = None
    tl = None

HAVE_TRITON = triton is not None

# float dtypes the Triton kernels read (math is fp32 inside)
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreting() -> bool:
    """True under Triton's interpreter (TRITON_INTERPRET=1): kernels run on CPU tensors, bf16 is broken."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def runs_here(t: torch.Tensor) -> bool:
    """Whether a Triton kernel can take a tensor on this device: CUDA, or CPU under the interpreter."""
    return t.device.type == "cuda" or (interpreting() and t.device.type == "cpu")


def placement_reason(t: torch.Tensor, *, floats: bool = False) -> str | None:
    """Why no Triton kernel can take `t` here (None: one can). With floats=True, `t` must also be one of
    FLOAT_DTYPES, and not bf16 under the interpreter (broken there). The kernels' fallback reasons."""
    if not HAVE_TRITON:
        return "triton unavailable"
    if floats and t.dtype not in FLOAT_DTYPES:
        return f"dtype={str(t.dtype).removeprefix('torch.')}"
    if not runs_here(t):
        return f"device={t.device.type}"
    if floats and t.dtype == torch.bfloat16 and interpreting():
        return "dtype=bfloat16 under the Triton interpreter"
    return None


def nvidia_hopper_or_later(device: torch.device) -> bool:
    return (device.type == "cuda" and not torch.version.hip
            and torch.cuda.get_device_capability(device)[0] >= 9)


class KernelFailures:
    """Kernels (or launch features, such as programmatic dependent launch) that failed to build or launch in this
    process, and what runs instead. Launch code stops choosing them; this is run-time state, not tuning.

    Kernels record; they do not log. Whoever owns logging collects what is new with `take_new()` (hotfuse.safety,
    after every fused call and warm-up, logs each failure once with the fusion it belongs to)."""

    def __init__(self) -> None:
        self._failed: dict[str, str] = {}
        self._new: list[tuple[str, str]] = []

    def record(self, kernel: str, exc: BaseException, instead: str) -> None:
        if kernel in self._failed:
            return
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
        self._failed[kernel] = f"{why}; {instead} from now on"
        self._new.append((kernel, self._failed[kernel]))

    def failed(self, kernel: str) -> bool:
        return kernel in self._failed

    def take_new(self) -> list[tuple[str, str]]:
        new, self._new = self._new, []
        return new

    def snapshot(self) -> dict[str, str]:
        return dict(self._failed)

    def reset(self) -> None:
        self._failed.clear()
        self._new.clear()


KERNEL_FAILURES = KernelFailures()
