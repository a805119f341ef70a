"""Installing and reverting patches: one record per patched attribute (target, original, replacement).

On SGLang the patch goes through the engine's own `HookRegistry` as an AROUND hook (the hook receives
`original_fn` on every call, so it never holds a saved original that the registry's rebinding of
`from X import Y` copies could turn into infinite recursion). On vLLM, which has no registry, a small
patcher here does the same job: set the attribute, rebind `from X import Y` copies, remember all of
it so `revert` can put everything back.

Adapters hand in an `around(original, *args, **kwargs)` callable; this module never holds kernel
math and never decides *whether* to patch (that is validation's and the adapter's job).
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotfuse.targets import Validation

Around = Callable[..., Any]


@dataclass
class Patch:
    fusion: str
    target: str
    owner: Any
    attr: str
    original: Any            # what owner.__dict__ held before (staticmethod wrappers kept)
    replacement: Any         # what it holds now
    via: str                 # "sglang HookRegistry" or "hotfuse patcher"
    copies: list[tuple[types.ModuleType, str]] = field(default_factory=list)  # rebound `from X import Y`


def _module_copies(original_fn: Any, skip: Any) -> list[tuple[types.ModuleType, str]]:
    """Every module attribute other than `skip`'s that is the very object `original_fn`."""
    found = []
    for mod in list(sys.modules.values()):
        if mod is skip or not isinstance(mod, types.ModuleType):
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        found.extend((mod, name) for name, value in items if value is original_fn)
    return found


def _rewrap(raw: Any, fn: Callable) -> Any:
    if isinstance(raw, staticmethod):
        return staticmethod(fn)
    if isinstance(raw, classmethod):
        return classmethod(fn)
    return fn


def apply_with_patcher(fusion: str, v: Validation, around: Around) -> Patch:
    """Install `around` on a validated target with hotfuse's own patcher (vLLM)."""
    original_fn = v.original

    @functools.wraps(original_fn)
    def hotfuse_wrapper(*args, **kwargs):
        return around(original_fn, *args, **kwargs)

    hotfuse_wrapper.__wrapped__ = original_fn
    hotfuse_wrapper.__hotfuse__ = fusion
    replacement = _rewrap(v.raw, hotfuse_wrapper)
    setattr(v.owner, v.attr, replacement)
    copies = _module_copies(original_fn, v.owner) if isinstance(v.owner, types.ModuleType) else []
    for mod, name in copies:
        setattr(mod, name, hotfuse_wrapper)
    return Patch(fusion, v.target.dotted, v.owner, v.attr, v.raw, replacement, "hotfuse patcher", copies)


def apply_with_hook_registry(fusion: str, v: Validation, around: Around) -> Patch:
    """Install `around` on a validated target through SGLang's HookRegistry (AROUND hook)."""
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    def hotfuse_hook(original_fn, *args, **kwargs):
        return around(original_fn, *args, **kwargs)

    hotfuse_hook.__hotfuse__ = fusion
    HookRegistry.register(v.target.dotted, hotfuse_hook, HookType.AROUND)
    # load_plugins() applies hooks after every plugin ran; applying now (idempotent) lets us confirm
    # the patch took and report it from this very process.
    HookRegistry.apply_hooks()
    replacement = vars(v.owner).get(v.attr, getattr(v.owner, v.attr))
    live = replacement.__func__ if isinstance(replacement, (staticmethod, classmethod)) else replacement
    if live is v.original:
        raise RuntimeError(f"SGLang HookRegistry did not patch {v.target.dotted}")
    live.__hotfuse__ = fusion
    copies = _module_copies(live, v.owner) if isinstance(v.owner, types.ModuleType) else []
    return Patch(fusion, v.target.dotted, v.owner, v.attr, v.raw, replacement, "sglang HookRegistry", copies)


def revert(patch: Patch) -> None:
    """Put back exactly what `patch` replaced, including rebound `from X import Y` copies."""
    setattr(patch.owner, patch.attr, patch.original)
    original_fn = patch.original.__func__ if isinstance(patch.original, (staticmethod, classmethod)) else patch.original
    for mod, name in patch.copies:
        setattr(mod, name, original_fn)
    if patch.via == "sglang HookRegistry":
        from sglang.srt.plugins.hook_registry import HookRegistry

        hooks = HookRegistry._hooks.get(patch.target, [])
        hooks[:] = [h for h in hooks if not getattr(h[1], "__hotfuse__", None)]
        if not hooks:
            HookRegistry._hooks.pop(patch.target, None)
        HookRegistry._patched.discard(patch.target)
