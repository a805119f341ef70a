"""Loading hotfuse into one engine process, and deciding every fusion's state there.

`load(engine)` is what the entry points call: once per process, never raising. `plan_engine(...,
install=False)` runs the same decisions without patching, for `hotfuse status`.

Order of work in a process: parse flags (an invalid flag set patches nothing); apply the engine's
infrastructure patches (on vLLM the compile-cache key: if it cannot be applied, no fusion is applied
either, since a flipped flag could then load a stale compiled graph); then for each fusion ask its
adapter for a plan, validate every target, and install the hooks. Drift skips only that fusion.
An exception anywhere reverts every patch made in this process: the engine runs stock.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

from hotfuse._version import __version__
from hotfuse.adapters import AdapterPlan, plan_for
from hotfuse.flags import ENV_ENABLE, FlagSet, Mode, forget_process_flags, process_flags
from hotfuse.log import logger
from hotfuse.patching import Patch, apply_with_hook_registry, apply_with_patcher, revert
from hotfuse.registry import ENGINE_INFRA, FAILED_STATES, FUSIONS, State, engine_record, fixed_state, \
    unsupported_reason
from hotfuse.targets import validate



@dataclass
class FusionReport:
    name: str
    mode: Mode
    state: State
    reason: str
    targets: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """The operator asked for this fusion and it did not take effect as asked."""
        if self.mode is Mode.OFF:
            return False
        if self.state in FAILED_STATES:
            return True
        return self.mode is Mode.REFERENCE and self.state is State.NATIVE


@dataclass
class EngineState:
    engine: str
    engine_version: str | None
    flags: FlagSet
    fusions: dict[str, FusionReport] = field(default_factory=dict)
    patches: list[Patch] = field(default_factory=list)
    infra: dict[str, str] = field(default_factory=dict)   # infra patch -> state/reason
    error: str | None = None
    unsupported: str | None = None   # why this engine release can never load hotfuse

    @property
    def failed(self) -> bool:
        return self.error is not None or any(f.failed for f in self.fusions.values())


def engine_version(engine: str) -> str | None:
    for dist in engine_record(engine).distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class InjectedFault(RuntimeError):
    pass


def _maybe_fault(flags: FlagSet, point: str, name: str) -> None:
    """Test-only fault injection (HOTFUSE_TEST_FAULTS=<point>:<name>, documented in the README)."""
    if flags.fault(point, name):
        raise InjectedFault(f"test fault {point}:{name} injected through HOTFUSE_TEST_FAULTS")


def _install(engine: str, name: str, plan: AdapterPlan, flags: FlagSet, install: bool,
             patches: list[Patch]) -> tuple[State, str, list[str]]:
    """Validate every hook target of `plan`; install all of them or none. Returns state, reason, targets."""
    validations = [(validate(target, flags.allow_drift), around) for target, around in plan.hooks]
    dependencies = [validate(target, flags.allow_drift) for target in plan.requires]
    targets = [v.target.dotted for v, _ in validations]
    checked = [v for v, _ in validations] + dependencies
    drifted = [v.reason for v in checked if not v.ok]
    if drifted:
        return State.DRIFT, "; ".join(drifted), targets
    for v in checked:
        if v.drift_allowed:
            logger.warning("%s: %s", name, v.reason)
    if install:
        apply = apply_with_hook_registry if engine == "sglang" else apply_with_patcher
        for v, around in validations:
            patches.append(apply(name, v, around))
        _maybe_fault(flags, "install", name)
    return plan.state, plan.reason, targets


def inert_reason(flags: FlagSet) -> str:
    value = flags.raw.get(ENV_ENABLE)
    if value is None:
        return "HOTFUSE is not set: nothing is patched"
    return f"HOTFUSE={value!r} turns hotfuse off: nothing is patched"


def plan_engine(engine: str, flags: FlagSet, install: bool) -> EngineState:
    """Decide (and with install=True, apply) every fusion for `engine` in this process."""
    version = engine_version(engine)
    state = EngineState(engine, version, flags, unsupported=unsupported_reason(engine, version))
    if flags.error or flags.inert:
        reason = flags.error or inert_reason(flags)
        for fusion in FUSIONS:
            state.fusions[fusion.name] = FusionReport(fusion.name, Mode.OFF, State.INERT, reason)
        return state
    if state.unsupported:  # nothing of the engine is imported: its modules are not hotfuse's to read here
        for fusion in FUSIONS:
            mode = flags.mode(fusion.name)
            state.fusions[fusion.name] = FusionReport(
                fusion.name, mode, State.UNSUPPORTED if mode is not Mode.OFF else State.OFF,
                state.unsupported if mode is not Mode.OFF else "not requested")
        return state
    try:
        for infra in ENGINE_INFRA.get(engine, ()):
            infra_state, reason, _ = _install(engine, infra, plan_for(infra, Mode.FUSED, version), flags, install,
                                              state.patches)
            state.infra[infra] = f"{infra_state.value}: {reason}"
            if infra_state is State.DRIFT:
                for fusion in FUSIONS:
                    mode = flags.mode(fusion.name)
                    state.fusions[fusion.name] = FusionReport(
                        fusion.name, mode, State.DRIFT if mode is not Mode.OFF else State.OFF,
                        f"{infra} could not be applied ({reason}); no fusion is applied without it")
                return state
        for fusion in FUSIONS:
            mode = flags.mode(fusion.name)
            support = fusion.support(engine)
            if mode is Mode.OFF:
                state.fusions[fusion.name] = FusionReport(fusion.name, mode, State.OFF, "not requested")
                continue
            _maybe_fault(flags, "plan", fusion.name)
            if support is None or support.adapter is None:
                fixed, reason = fixed_state(support, engine, disabled=mode is Mode.REFERENCE)
                state.fusions[fusion.name] = FusionReport(fusion.name, mode, fixed, reason)
                continue
            plan = plan_for(support.adapter, mode, version)
            fstate, reason, targets = _install(engine, fusion.name, plan, flags, install, state.patches)
            state.fusions[fusion.name] = FusionReport(fusion.name, mode, fstate, reason, targets)
    except Exception as exc:  # never into the engine: revert everything, run stock
        for patch in reversed(state.patches):
            try:
                revert(patch)
            except Exception:
                logger.exception("hotfuse: could not revert %s", patch.target)
        state.patches.clear()
        state.error = f"{type(exc).__name__}: {exc}"
        for fusion in FUSIONS:
            report = state.fusions.get(fusion.name)
            mode = flags.mode(fusion.name)
            state.fusions[fusion.name] = FusionReport(
                fusion.name, mode, State.ERROR if mode is not Mode.OFF else State.OFF,
                f"hotfuse failed ({state.error}); every patch was reverted, the engine runs stock",
                report.targets if report else [])
    return state


_LOADED: dict[str, EngineState] = {}


def load(engine: str) -> EngineState | None:
    """Entry-point body: idempotent per process, never raises, cheap when HOTFUSE is unset."""
    if engine in _LOADED:
        return _LOADED[engine]
    try:
        flags = process_flags()
        if flags.error:
            logger.error(flags.error)
        state = plan_engine(engine, flags, install=True)
        _LOADED[engine] = state
        if state.error:
            logger.error("hotfuse: %s; every patch was reverted and %s runs stock", state.error, engine)
        elif not flags.inert:
            summary = ", ".join(f"{n}={r.state.value}" for n, r in state.fusions.items())
            logger.info("hotfuse %s in %s %s: %s", __version__, engine, state.engine_version, summary)
            for report in state.fusions.values():
                if report.state is State.DRIFT:
                    logger.warning("hotfuse: %s left alone (drift): %s", report.name, report.reason)
        from hotfuse import report as process_report

        process_report.publish(state)
        return state
    except Exception:
        logger.exception("hotfuse: plugin failed to load; %s runs stock", engine)
        return None


def loaded_state(engine: str) -> EngineState | None:
    return _LOADED.get(engine)


def observe(engine: str, fusion: str, what: str) -> None:
    """An adapter's account of what it did at run time in this process (e.g. the engine settings it changed and
    read back): it becomes the fusion's reason in this process's report. The one way adapters write to it."""
    state = _LOADED.get(engine)
    report = state.fusions.get(fusion) if state else None
    if report is not None:
        report.reason = what


def reset() -> None:
    """Forget everything hotfuse did in this process, as if it had never loaded: every patch reverted, loaded
    states, flags, counters, safety-net state, adapters' one-time work and kernel failures cleared. For tests."""
    from hotfuse import adapters, counters, safety
    from hotfuse.kernels import KERNEL_FAILURES

    for state in _LOADED.values():
        for patch in reversed(state.patches):
            revert(patch)
    _LOADED.clear()
    forget_process_flags()
    counters.reset()
    safety.reset()
    adapters.forget_first_calls()
    KERNEL_FAILURES.reset()


