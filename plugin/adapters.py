"""What an engine adapter returns: the state it would reach and the hooks that get it there.

An adapter module (under `hotfuse.patches.<engine>`) exposes `plan(mode, engine_version) -> AdapterPlan`.
It decides from the operator's mode and the engine release; the loader validates every hook target
and installs the hooks, or reports drift. Adapters hold no kernel math: they route calls to
`hotfuse` kernels and references, or back to the engine's own code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotfuse.registry import State
from hotfuse.targets import Target

Around = Callable[..., Any]


@dataclass(frozen=True)
class AdapterPlan:
    state: State
    reason: str
    hooks: tuple[tuple[Target, Around], ...] = ()
    # engine functions the hooks call but do not replace: validated like hook targets, never patched
    requires: tuple[Target, ...] = ()
