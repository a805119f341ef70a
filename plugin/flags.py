"""Every HOTFUSE_* environment variable, read here and nowhere else into one immutable `FlagSet` per process:
the operator's switches HOTFUSE, HOTFUSE_DISABLE, HOTFUSE_ALLOW_DRIFT, the safety nets' HOTFUSE_VERIFY /
HOTFUSE_SHADOW / HOTFUSE_SHADOW_TRIP, and the plumbing (HOTFUSE_REPORT_DIR, HOTFUSE_LOG_LEVEL, the test hooks
HOTFUSE_TEST_FAULTS and HOTFUSE_TEST_CUDA_GATE, the demo's HOTFUSE_DEMO_MODELS).

`HOTFUSE` unset or `0`       the plugin loads and patches nothing: the engine runs stock.
`HOTFUSE=1` / `all`          every fusion on.
`HOTFUSE=a,b`                only those fusions on.
`HOTFUSE_DISABLE=a,b` / all  those fusions run the unfused reference path, even where the engine ships
                             its own fused kernel. It wins over `HOTFUSE` for the names it lists.
`HOTFUSE_ALLOW_DRIFT=1`      apply a patch whose target source differs from every validated fingerprint,
                             as long as its signature still matches (loudly).

Any unknown name or malformed value makes the whole flag set invalid: `FlagSet.error` names every problem
in one line and lists the valid names, and the plugin patches nothing. Names and values are case- and
whitespace-insensitive, and `-` may stand for `_` in fusion names (`gemma4-router`). This module imports nothing
heavy: the entry points read it before deciding whether to import torch or an engine.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hotfuse.registry import FUSION_NAMES

ENV_ENABLE = "HOTFUSE"
ENV_DISABLE = "HOTFUSE_DISABLE"
ENV_ALLOW_DRIFT = "HOTFUSE_ALLOW_DRIFT"
ENV_VERIFY = "HOTFUSE_VERIFY"
ENV_SHADOW = "HOTFUSE_SHADOW"
ENV_SHADOW_TRIP = "HOTFUSE_SHADOW_TRIP"
ENV_REPORT_DIR = "HOTFUSE_REPORT_DIR"
ENV_LOG_LEVEL = "HOTFUSE_LOG_LEVEL"
ENV_TEST_FAULTS = "HOTFUSE_TEST_FAULTS"
ENV_TEST_CUDA_GATE = "HOTFUSE_TEST_CUDA_GATE"
ENV_DEMO_MODELS = "HOTFUSE_DEMO_MODELS"

# The operator-facing variables, rendered into the README by `hotfuse readme`.
ENV_DOCS: tuple[tuple[str, str], ...] = (
    (ENV_ENABLE, "unset or `0`: the plugin loads and patches nothing (engine stock). `1` or `all`: every "
     "fusion on. `a,b`: only those fusions."),
    (ENV_DISABLE, "`a,b` (or `all`): those fusions run the unfused reference path, even where the engine has "
     "its own native fused kernel. Wins over `HOTFUSE`. Ignored while `HOTFUSE` is off."),
    (ENV_ALLOW_DRIFT, "`1`: apply a patch whose target source matches no validated fingerprint, as long as its "
     "signature matches (logged as a warning). Default `0`: such targets are left alone and reported as drift."),
    (ENV_VERIFY, "`0`: no start-up self-check. Default `1`: on the first call of each active kernel in each "
     "process, the kernel and its torch reference run on random inputs of the same shape, dtype and device; a "
     "kernel outside the tolerance table switches its fusion to the reference path in that process (one "
     "error line)."),
    (ENV_SHADOW, "a fraction in (0, 1]: that share of fused calls also runs the reference and compares (sampler: "
     "probabilities within tolerance; router: same experts, weights within tolerance; gathers and post-process: "
     "exact). Default `0`: off, no extra work and no host sync on the fast path."),
    (ENV_SHADOW_TRIP, "mismatches after which shadow mode switches the fusion to its reference path in that "
     "process (default `1`)."),
    (ENV_REPORT_DIR, "a directory: every engine process writes `<engine>-<pid>.json` there (flags, states, "
     "patches, counters), refreshed while counters change."),
    (ENV_LOG_LEVEL, "level of the `hotfuse` logger (default `INFO`)."),
    (ENV_TEST_FAULTS, "testing only: `plan:<fusion>` or `install:<fusion>` makes that adapter raise, to "
     "prove a failing plugin leaves the engine stock; `kernel:<fusion>` makes that fusion's kernels return "
     "visibly wrong outputs, to prove the self-check and shadow mode catch them."),
    (ENV_TEST_CUDA_GATE, "testing only: `1` makes `qk_norm_fp8`'s \"tracing for CUDA\" test true on a CPU "
     "machine, so CI can trace the real SGLang functions through the patched path."),
    (ENV_DEMO_MODELS, "where `hotfuse demo` keeps its tiny models (default `~/.cache/hotfuse/demo-models`)."),
)
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_ALL_WORDS = frozenset({"1", "all"})
_OFF_WORDS = frozenset({"", "0"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


class Mode(str, enum.Enum):
    """What the operator asked for one fusion."""

    OFF = "off"              # not requested: the engine's own code runs untouched
    FUSED = "fused"          # hotfuse's fused path
    REFERENCE = "reference"  # forced unfused reference path (HOTFUSE_DISABLE)


class FlagError(ValueError):
    """A flag value that cannot be honoured; the plugin then patches nothing."""


@dataclass(frozen=True)
class FlagSet:
    """The effective, immutable flag set of this process."""

    modes: Mapping[str, Mode] = field(default_factory=dict)
    allow_drift: bool = False
    verify: bool = True           # start-up self-check of each kernel (HOTFUSE_VERIFY)
    shadow: float = 0.0           # share of fused calls compared with the reference (HOTFUSE_SHADOW)
    shadow_trip: int = 1          # mismatches before falling back (HOTFUSE_SHADOW_TRIP)
    error: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict)
    # read whether HOTFUSE is on or not
    report_dir: str | None = None                       # HOTFUSE_REPORT_DIR
    log_level: str = "INFO"                             # HOTFUSE_LOG_LEVEL
    test_faults: frozenset[str] = frozenset()           # HOTFUSE_TEST_FAULTS items, "<point>:<fusion>"
    test_cuda_gate: bool = False                        # HOTFUSE_TEST_CUDA_GATE=1
    demo_models: str | None = None                      # HOTFUSE_DEMO_MODELS

    def fault(self, point: str, fusion: str) -> bool:
        """The documented test hook HOTFUSE_TEST_FAULTS=<point>:<fusion>."""
        return f"{point}:{fusion}" in self.test_faults

    @property
    def inert(self) -> bool:
        """True when the plugin must patch nothing (HOTFUSE off, or an invalid flag)."""
        return self.error is not None or not any(m is not Mode.OFF for m in self.modes.values())

    def mode(self, name: str) -> Mode:
        if self.inert:
            return Mode.OFF
        return self.modes.get(name, Mode.OFF)

    def requested(self) -> tuple[str, ...]:
        """Fusions the operator named (fused or forced to reference), in registry order."""
        return tuple(n for n in FUSION_NAMES if self.mode(n) is not Mode.OFF)

    def cache_key(self) -> str:
        """A stable string that changes whenever the effective behaviour of hotfuse changes.

        Used as a compile-cache factor: two processes with equal keys trace identical graphs.
        """
        if self.inert:
            return "inert"
        parts = [f"{n}={self.mode(n).value}" for n in FUSION_NAMES]
        parts.append(f"allow_drift={int(self.allow_drift)}")
        text = ";".join(parts)
        return text + ";sha=" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _split_names(var: str, value: str) -> tuple[frozenset[str], list[str]]:
    """Parse a comma list of fusion names (or the word `all`): the names, and every problem found in it.

    Names are case- and whitespace-insensitive, and `-` may stand for `_` (gemma4-router)."""
    items = [item.strip().lower().replace("-", "_") for item in value.split(",")]
    problems = []
    empty = [str(i + 1) for i, item in enumerate(items) if not item]
    if empty:
        problems.append(f"empty name at position {', '.join(empty)} of the comma list")
    named = [item for item in items if item]
    if any(item in _ALL_WORDS for item in named) and len(items) > 1:
        problems.append("'1'/'all' must stand alone")
    unknown = sorted(set(named) - set(FUSION_NAMES) - _ALL_WORDS)
    if unknown:
        problems.append(f"unknown fusion name(s) {', '.join(unknown)}")
    if problems:
        return frozenset(), [f"{var}={value!r}: {'; '.join(problems)}"]
    if any(item in _ALL_WORDS for item in named):
        return frozenset(FUSION_NAMES), []
    return frozenset(named), []


def _parse_bool(var: str, value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise FlagError(f"{var}={value!r} is malformed: expected 0 or 1")


def _parse_fraction(var: str, value: str) -> float:
    try:
        number = float(value.strip() or "0")
    except ValueError:
        raise FlagError(f"{var}={value!r} is malformed: expected a fraction between 0 and 1") from None
    if not 0.0 <= number <= 1.0:  # also rejects nan
        raise FlagError(f"{var}={value!r} is out of range: expected a fraction between 0 and 1")
    return number


def _parse_count(var: str, value: str, default: int) -> int:
    text = value.strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise FlagError(f"{var}={value!r} is malformed: expected a whole number of at least 1")
    return int(text)


def quick_inert(environ: Mapping[str, str] | None = None) -> bool:
    """True when HOTFUSE is off and no report is asked for: the entry points return before importing anything."""
    env = os.environ if environ is None else environ
    return env.get(ENV_ENABLE, "").strip() in _OFF_WORDS and not env.get(ENV_REPORT_DIR)


def parse_flags(environ: Mapping[str, str] | None = None) -> FlagSet:
    """Parse the hotfuse variables of `environ` (default: os.environ). Never raises."""
    env = os.environ if environ is None else environ
    raw = {k: env[k] for k in (ENV_ENABLE, ENV_DISABLE, ENV_ALLOW_DRIFT, ENV_VERIFY, ENV_SHADOW, ENV_SHADOW_TRIP)
           if k in env}
    problems: list[str] = []
    level = env.get(ENV_LOG_LEVEL, "INFO").strip().upper() or "INFO"
    if level not in _LOG_LEVELS:
        problems.append(f"{ENV_LOG_LEVEL}={env[ENV_LOG_LEVEL]!r}: expected one of {', '.join(_LOG_LEVELS)}")
        level = "INFO"
    plumbing = dict(report_dir=env.get(ENV_REPORT_DIR) or None, log_level=level,
                    test_faults=frozenset(i.strip() for i in env.get(ENV_TEST_FAULTS, "").split(",") if i.strip()),
                    test_cuda_gate=env.get(ENV_TEST_CUDA_GATE, "").strip() == "1",
                    demo_models=env.get(ENV_DEMO_MODELS) or None)
    enable_value = raw.get(ENV_ENABLE, "").strip().lower()
    if enable_value in _OFF_WORDS:
        return FlagSet(raw=raw, **plumbing)

    def parse(parser, *args):
        try:
            return parser(*args)
        except FlagError as exc:
            problems.append(str(exc))
            return None

    enabled, enable_problems = _split_names(ENV_ENABLE, raw[ENV_ENABLE])
    disable_value = raw.get(ENV_DISABLE, "")
    disabled, disable_problems = _split_names(ENV_DISABLE, disable_value) if disable_value.strip() else (frozenset(), [])
    problems += enable_problems + disable_problems
    allow_drift = parse(_parse_bool, ENV_ALLOW_DRIFT, raw.get(ENV_ALLOW_DRIFT, ""))
    verify = parse(_parse_bool, ENV_VERIFY, raw.get(ENV_VERIFY, "1"))
    shadow = parse(_parse_fraction, ENV_SHADOW, raw.get(ENV_SHADOW, ""))
    shadow_trip = parse(_parse_count, ENV_SHADOW_TRIP, raw.get(ENV_SHADOW_TRIP, ""), 1)
    if problems:
        message = (
            f"hotfuse: {' | '.join(problems)}. Valid fusion names: {', '.join(FUSION_NAMES)} (or 1/all; '-' may "
            "stand for '_'). Nothing is patched; the engine runs stock."
        )
        return FlagSet(error=message, raw=raw, **plumbing)
    modes = {}
    for name in FUSION_NAMES:
        if name in disabled:
            modes[name] = Mode.REFERENCE
        elif name in enabled:
            modes[name] = Mode.FUSED
        else:
            modes[name] = Mode.OFF
    return FlagSet(modes=modes, allow_drift=allow_drift, verify=verify, shadow=shadow, shadow_trip=shadow_trip,
                   raw=raw, **plumbing)


_process_flags: FlagSet | None = None


def process_flags() -> FlagSet:
    """The flag set of this process, parsed on first use and never again (hotfuse.runtime.reset forgets it)."""
    global _process_flags
    if _process_flags is None:
        _process_flags = parse_flags()
    return _process_flags


def forget_process_flags() -> None:
    """Parse the environment again on the next `process_flags()` (hotfuse.runtime.reset, for tests)."""
    global _process_flags
    _process_flags = None
