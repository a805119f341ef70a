"""Safety nets around every fused kernel call: start-up self-check, shadow comparison, automatic fallback; and
the one place where kernel calls are counted and kernel problems logged (kernels keep no books).

Adapters call a kernel as `safety.call(check, *args)` (checks in `hotfuse.kernels.checks`):

- tripped fusion: the reference runs, counted as a fallback ("tripped: ...").
- inputs the kernel does not take (`check.unsupported`): the reference runs, counted as a fallback with that
  reason. An adapter that must hand such calls back to the engine's own path asks first with
  `safety.declines(check, *args)` (counted the same way) and then calls `call(..., checked=True)`: each call's
  inputs are checked once.
- a kernel answer is counted as a fused call; kernels that failed to build or launch on the way and let another
  kernel answer (hotfuse.kernels.KERNEL_FAILURES) are logged once, with the fusion.
- self-check (HOTFUSE_VERIFY, on by default): the first call of each kernel in the process first runs the
  kernel and its reference on two random argument sets shaped like the real ones (same shapes, dtypes,
  device) and compares them with the check's rule and tolerance. A failure trips the fusion for this
  process, with one error line naming the kernel, the error and the tolerance; the reference runs from then.
- shadow mode (HOTFUSE_SHADOW=f): every call whose running share crosses f (call n is checked when
  floor(n*f) > floor((n-1)*f), so f=0.25 checks every fourth call, deterministically) also runs the reference
  on copies of the inputs and compares. Mismatches are counted with the worst error; HOTFUSE_SHADOW_TRIP
  of them trip the fusion. With shadow mode off nothing is read back from the device.
- kernel errors: a kernel that raises on an eager call (Triton cannot compile it for this GPU, say) trips the
  fusion with one error line and the reference answers that call and every later one; so does an engine
  adapter's warm-up (`warm_up`). The engine keeps serving, on the reference path, instead of failing.
- test fault (HOTFUSE_TEST_FAULTS=kernel:<fusion>): the kernel's output is replaced by a visibly wrong one.

Checks need the host to read a result, so they never run while torch.compile traces or a CUDA graph is
being captured: those calls run the kernel alone, and the self-check waits for the first eager call.
All state is per process and per fusion; `snapshot()` feeds the process report and the metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from hotfuse.counters import count_fallback, count_fused
from hotfuse.flags import process_flags
from hotfuse.kernels import KERNEL_FAILURES
from hotfuse.kernels.checks import Check
from hotfuse.log import logger
from hotfuse.registry import FUSION_NAMES

SELF_CHECK_DRAWS = 2


@dataclass
class FusionSafety:
    tripped: str | None = None                                  # why the fusion fell back for good
    self_check: dict[str, str] = field(default_factory=dict)    # kernel -> "passed ..." / "failed ..."
    shadow_checks: int = 0
    shadow_mismatches: int = 0
    worst_error: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)         # kernel -> eager calls seen (shadow cadence)
    kernels_unavailable: dict[str, str] = field(default_factory=dict)  # kernel -> why another kernel answers

    def as_dict(self) -> dict:
        return {"tripped": self.tripped, "self_check": dict(self.self_check), "shadow_checks": self.shadow_checks,
                "shadow_mismatches": self.shadow_mismatches,
                "worst_error": self.worst_error if math.isfinite(self.worst_error) else "inf",
                "kernels_unavailable": dict(self.kernels_unavailable)}


STATE: dict[str, FusionSafety] = {name: FusionSafety() for name in FUSION_NAMES}


def snapshot() -> dict[str, dict]:
    return {name: s.as_dict() for name, s in STATE.items()}


def reset() -> None:
    for name in FUSION_NAMES:
        STATE[name] = FusionSafety()


def _fault(fusion: str) -> bool:
    """The documented test hook HOTFUSE_TEST_FAULTS=kernel:<fusion>."""
    return process_flags().fault("kernel", fusion)


def _log_kernel_failures(fusion: str) -> None:
    """Kernels that failed to build or launch during `fusion`'s call and handed over to another kernel: logged once
    and kept in the fusion's state."""
    for kernel, why in KERNEL_FAILURES.take_new():
        STATE[fusion].kernels_unavailable[kernel] = why
        logger.warning("hotfuse: %s: kernel %s unavailable here (%s)", fusion, kernel, why)


_CUDA = torch.cuda.is_available()


def _tracing_or_capturing() -> bool:
    return torch.compiler.is_compiling() or (_CUDA and torch.cuda.is_current_stream_capturing())


def trip(fusion: str, reason: str) -> None:
    state = STATE[fusion]
    if state.tripped is None:
        state.tripped = reason
        logger.error("hotfuse: %s switched to its reference path in this process: %s", fusion, reason)


def _fused(check: Check, args: tuple):
    try:
        out = check.fused(*args)
    finally:
        _log_kernel_failures(check.fusion)
    return check.corrupt(out) if _fault(check.fusion) else out


def _error_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


def _fused_or_reference(check: Check, args: tuple):
    """The kernel's answer; if it raises, the fusion trips and the reference answers (eager calls only: this is
    never reached while tracing or capturing)."""
    try:
        out = _fused(check, args)
    except Exception as exc:
        trip(check.fusion, f"{check.kernel} raised {_error_line(exc)}")
        count_fallback(check.fusion, "tripped: reference path")
        return check.reference(*args)
    count_fused(check.fusion)
    return out


def warm_up(fusion: str, fn, *args) -> bool:
    """An adapter's warm-up (e.g. compiling a fusion's kernels at engine start): False, with the fusion tripped
    and one error line, if it raises."""
    if STATE[fusion].tripped is not None:
        return False
    try:
        fn(*args)
        return True
    except Exception as exc:
        trip(fusion, f"warm-up raised {_error_line(exc)}")
        return False
    finally:
        _log_kernel_failures(fusion)


def _compare(check: Check, args: tuple, out, ref) -> tuple[bool, float]:
    error = check.error(out, ref, args)
    return error <= check.tolerance(args), error


def self_check(check: Check, like: tuple, draws: int = SELF_CHECK_DRAWS) -> tuple[bool, float]:
    """Kernel vs reference on `draws` random argument sets shaped like `like`; (passed, worst error)."""
    generator = torch.Generator().manual_seed(1234)
    worst = 0.0
    for _ in range(draws):  # (only calls through `call` are counted: these draws are not engine traffic)
        args = check.random_like(like, generator)
        ref = check.reference(*_copies(check, args))
        ok, error = _compare(check, args, _fused(check, args), ref)
        worst = max(worst, error)
        if not ok:
            return False, worst
    return True, worst


def _copies(check: Check, args: tuple) -> tuple:
    return tuple(a.clone() if i in check.mutates and isinstance(a, torch.Tensor) else a for i, a in enumerate(args))


def record_fallback(fusion: str, reason: str) -> None:
    """An adapter sent a call down the engine's own path or the reference path itself, for `reason`."""
    count_fallback(fusion, reason)


def record_fused(fusion: str) -> None:
    """An adapter answered a call on its fused path without a hotfuse kernel (nothing to do, or an engine kernel
    called the fused way)."""
    count_fused(fusion)


def declines(check: Check, *args) -> str | None:
    """Why `check`'s kernel cannot take these inputs (counted as a fallback of its fusion), or None. For adapters
    that hand such calls back to the engine's own path rather than to hotfuse's reference; they then call
    `call(check, *args, checked=True)`."""
    reason = check.unsupported(*args)
    if reason is not None:
        count_fallback(check.fusion, reason)
    return reason


def call(check: Check, *args, checked: bool = False):
    """Run `check`'s kernel on `args` behind the safety nets (see the module docstring). checked=True: the
    adapter asked `declines` about these very inputs already."""
    fusion, state = check.fusion, STATE[check.fusion]
    if state.tripped is not None:
        count_fallback(fusion, "tripped: reference path")
        return check.reference(*args)
    if not checked and declines(check, *args) is not None:
        return check.reference(*args)
    if _tracing_or_capturing():
        out = _fused(check, args)
        count_fused(fusion)
        return out
    flags = process_flags()
    if flags.verify and check.kernel not in state.self_check:
        started = time.perf_counter()
        shape = ", ".join(str(tuple(a.shape)) for a in args if isinstance(a, torch.Tensor))
        try:
            passed, error = self_check(check, args)
        except Exception as exc:
            state.self_check[check.kernel] = f"raised {_error_line(exc)} on {shape}"
            trip(fusion, f"start-up self-check of {check.kernel} raised {_error_line(exc)}")
            count_fallback(fusion, "tripped: reference path")
            return check.reference(*args)
        took = time.perf_counter() - started
        tolerance = check.tolerance(args)
        state.self_check[check.kernel] = (f"{'passed' if passed else 'failed'}: max error {error:.3g} "
                                          f"(tolerance {tolerance:.3g}) on {shape}, {took * 1e3:.0f} ms")
        if not passed:
            trip(fusion, f"start-up self-check of {check.kernel} failed: max error {error:.3g} > "
                 f"tolerance {tolerance:.3g} on inputs shaped {shape}")
            count_fallback(fusion, "tripped: reference path")
            return check.reference(*args)
    if flags.shadow <= 0.0:
        return _fused_or_reference(check, args)
    n = state.calls.get(check.kernel, 0) + 1
    state.calls[check.kernel] = n
    if math.floor(n * flags.shadow) == math.floor((n - 1) * flags.shadow):
        return _fused_or_reference(check, args)
    ref = check.reference(*_copies(check, args))
    out = _fused_or_reference(check, args)
    if state.tripped is not None:  # the kernel raised: out is the reference's answer
        return out
    ok, error = _compare(check, args, out, ref)
    state.shadow_checks += 1
    if not ok:
        state.shadow_mismatches += 1
        state.worst_error = max(state.worst_error, error)
        logger.warning("hotfuse: shadow check of %s: error %.3g > tolerance %.3g (%d mismatch(es))",
                       check.kernel, error, check.tolerance(args), state.shadow_mismatches)
        if state.shadow_mismatches >= flags.shadow_trip:
            trip(fusion, f"shadow mode saw {state.shadow_mismatches} mismatch(es) of {check.kernel} "
                 f"(worst error {state.worst_error:.3g})")
        # this call's answer is the reference's: a wrong output seen by the shadow never leaves
        if check.mutates and isinstance(out, torch.Tensor):
            return out.copy_(ref)
        return ref
    return out


def verify(device: torch.device | None = None, small: bool | None = None) -> list[dict]:
    """`hotfuse verify`: every check's kernel against its reference on this device, per dtype, over the
    check's shapes (small ones on CPU, where kernels run in Triton's interpreter). One row per (kernel, dtype)."""
    from hotfuse.kernels import interpreting
    from hotfuse.kernels.checks import CHECKS

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    small = device.type != "cuda" if small is None else small
    rows = []
    for check in CHECKS:
        for dtype in check.dtypes:
            row = {"fusion": check.fusion, "kernel": check.kernel, "dtype": str(dtype).removeprefix("torch."),
                   "device": device.type}
            if dtype == torch.bfloat16 and interpreting() and check.triton:
                rows.append({**row, "result": "skipped", "why": "bf16 is broken in Triton's interpreter"})
                continue
            worst, ok, shapes, ran = 0.0, True, [], 0
            for args in check.verify_args(device, dtype, small):
                ref = check.reference(*_copies(check, args))
                runs = check.unsupported(*args) is None
                out = _fused(check, args) if runs else check.reference(*args)
                passed, error = _compare(check, args, out, ref)
                ran += runs
                worst, ok = max(worst, error), ok and passed
                shapes.append(next(tuple(a.shape) for a in args if isinstance(a, torch.Tensor)))
            rows.append({**row, "shapes": shapes, "max_error": worst, "tolerance": check.tolerance(args),
                         "kernel_ran": ran > 0, "result": "passed" if ok else "FAILED"})
    return rows
