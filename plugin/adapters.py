"""What an engine adapter returns: the state it would reach and the hooks that get it there.

An adapter module (under `hotfuse.patches.<engine>`) exposes `plan(mode, release) -> AdapterPlan`, release being
the engine version as a tuple (0, 5, 23).
It decides from the operator's mode and the engine release; the loader validates every hook target
and installs the hooks, or reports drift. Adapters hold no kernel math: they route calls to
`hotfuse` kernels and references, or back to the engine's own code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotfuse.registry import State
from hotfuse.releases import parse_release
from hotfuse.targets import Target

Around = Callable[..., Any]


@dataclass(frozen=True)
class AdapterPlan:
    state: State
    reason: str
    hooks: tuple[tuple[Target, Around], ...] = ()
    # engine functions the hooks call but do not replace: validated like hook targets, never patched
    requires: tuple[Target, ...] = ()
    # targets of other releases that this release lacks on purpose, with why (e.g. a runner vLLM removed)
    not_applicable: tuple[tuple[Target, str], ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every engine function this plan relies on: what it patches and what it only validates."""
        return tuple(t for t, _ in self.hooks) + self.requires


def plan_for(adapter: str, mode, version: str | None) -> AdapterPlan:
    """The plan of adapter module `hotfuse.patches.<adapter>` for `mode` in engine release `version`: the one way
    both the runtime and the offline compatibility check ask an adapter."""
    return importlib.import_module(f"hotfuse.patches.{adapter}").plan(mode, parse_release(version))


_FIRST_CALLS: set[str] = set()


def first_call(key: str) -> bool:
    """True the first time an adapter asks with `key` in this process: the one mechanism for adapters' one-time
    work (compiling kernels for the real vocabulary on the engine's warm-up call)."""
    if key in _FIRST_CALLS:
        return False
    _FIRST_CALLS.add(key)
    return True


def forget_first_calls() -> None:
    """hotfuse.runtime.reset: every adapter's next call is a first call again."""
    _FIRST_CALLS.clear()
