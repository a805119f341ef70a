"""Per-process call counters per fusion: fused calls and fallbacks to the reference, by reason.

Plain Python integers bumped on the host: no tensor is read, so nothing here synchronises a device.
hotfuse.safety is the one layer that bumps them (kernel calls; and adapters' own decisions through
`safety.record_fallback` / `record_fused`). Reasons are short stable strings ("dtype=bfloat16", "device=cpu",
"greedy rows", "disabled: ...").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hotfuse.registry import FUSION_NAMES


@dataclass
class FusionCounters:
    fused: int = 0
    fallbacks: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"fused": self.fused, "fallbacks": dict(self.fallbacks)}


COUNTERS: dict[str, FusionCounters] = {name: FusionCounters() for name in FUSION_NAMES}


def count_fused(fusion: str) -> None:
    COUNTERS[fusion].fused += 1


def count_fallback(fusion: str, reason: str) -> None:
    COUNTERS[fusion].fallbacks[reason] += 1


def snapshot() -> dict[str, dict]:
    return {name: c.as_dict() for name, c in COUNTERS.items()}


def reset() -> None:
    for c in COUNTERS.values():
        c.fused = 0
        c.fallbacks.clear()
