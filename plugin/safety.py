"""Safety nets around every fused kernel call: start-up self-check, shadow comparison, automatic fallback.

Adapters call a kernel as `safety.call(check, *args)` (checks in `hotfuse.kernels.checks`):

- tripped fusion: the reference runs, counted as a fallback ("tripped: ...").
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

import logging
import math
import os
import time
from dataclasses import dataclass, field

import torch

from hotfuse.counters import count_fallback, paused
from hotfuse.flags import process_flags
from hotfuse.kernels.checks import Check
from hotfuse.registry import FUSION_NAMES

logger = logging.getLogger("hotfuse")

SELF_CHECK_DRAWS = 2


@dataclass
class FusionSafety:
    tripped: str | None = None                                  # why the fusion fell back for good
    self_check: dict[str, str] = field(default_factory=dict)    # kernel -> "passed ..." / "failed ..."
    shadow_checks: int = 0
    shadow_mismatches: int = 0
    worst_error: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)         # kernel -> eager calls seen (shadow cadence)

    def as_dict(self) -> dict:
        return {"tripped": self.tripped, "self_check": dict(self.self_check), "shadow_checks": self.shadow_checks,
                "shadow_mismatches": self.shadow_mismatches,
                "worst_error": self.worst_error if math.isfinite(self.worst_error) else "inf"}


STATE: dict[str, FusionSafety] = {name: FusionSafety() for name in FUSION_NAMES}


def snapshot() -> dict[str, dict]:
    return {name: s.as_dict() for name, s in STATE.items()}


def reset() -> None:
    global _faults
    _faults = None
    for name in FUSION_NAMES:
        STATE[name] = FusionSafety()


_faults: frozenset[str] | None = None


def _fault(fusion: str) -> bool:
    """The documented test hook HOTFUSE_TEST_FAULTS=kernel:<fusion> (read once per process)."""
    global _faults
    if _faults is None:
        _faults = frozenset(i.strip() for i in os.environ.get("HOTFUSE_TEST_FAULTS", "").split(","))
    return f"kernel:{fusion}" in _faults


_CUDA = torch.cuda.is_available()


def _tracing_or_capturing() -> bool:
    return torch.compiler.is_compiling() or (_CUDA and torch.cuda.is_current_stream_capturing())


def trip(fusion: str, reason: str) -> None:
    state = STATE[fusion]
    if state.tripped is None:
        state.tripped = reason
        logger.error("hotfuse: %s switched to its reference path in this process: %s", fusion, reason)


def _fused(check: Check, args: tuple):
    out = check.fused(*args)
    return check.corrupt(out) if _fault(check.fusion) else out


def _error_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


def _fused_or_reference(check: Check, args: tuple):
    """The kernel's answer; if it raises, the fusion trips and the reference answers (eager calls only: this is
    never reached while tracing or capturing)."""
    try:
        return _fused(check, args)
    except Exception as exc:
        trip(check.fusion, f"{check.kernel} raised {_error_line(exc)}")
        count_fallback(check.fusion, "tripped: reference path")
        return check.reference(*args)


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


def _compare(check: Check, args: tuple, out, ref) -> tuple[bool, float]:
    error = check.error(out, ref, args)
    return error <= check.tolerance(args), error


def self_check(check: Check, like: tuple, draws: int = SELF_CHECK_DRAWS) -> tuple[bool, float]:
    """Kernel vs reference on `draws` random argument sets shaped like `like`; (passed, worst error)."""
    generator = torch.Generator().manual_seed(1234)
    worst = 0.0
    with paused():
        for _ in range(draws):
            args = check.random_like(like, generator)
            ref = check.reference(*_copies(check, args))
            ok, error = _compare(check, args, _fused(check, args), ref)
            worst = max(worst, error)
            if not ok:
                return False, worst
    return True, worst


def _copies(check: Check, args: tuple) -> tuple:
    return tuple(a.clone() if i in check.mutates and isinstance(a, torch.Tensor) else a for i, a in enumerate(args))


def call(check: Check, *args):
    """Run `check`'s kernel on `args` behind the safety nets (see the module docstring)."""
    fusion, state = check.fusion, STATE[check.fusion]
    if state.tripped is not None:
        count_fallback(fusion, "tripped: reference path")
        return check.reference(*args)
    if _tracing_or_capturing():
        return _fused(check, args)
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
    with paused():
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
    from hotfuse import counters
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
                before = counters.COUNTERS[check.fusion].fused
                ref = check.reference(*_copies(check, args))
                passed, error = _compare(check, args, _fused(check, args), ref)
                ran += counters.COUNTERS[check.fusion].fused - before if check.triton else 1
                worst, ok = max(worst, error), ok and passed
                shapes.append(next(tuple(a.shape) for a in args if isinstance(a, torch.Tensor)))
            rows.append({**row, "shapes": shapes, "max_error": worst, "tolerance": check.tolerance(args),
                         "kernel_ran": ran > 0, "result": "passed" if ok else "FAILED"})
    return rows
