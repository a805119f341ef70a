"""Patch targets and their validation: a patch applies only to engine code it was validated against.

A `Target` names a function in an engine module, the parameter names its replacement relies on, and
the fingerprints of every engine source it was validated against. Before anything is patched the
live target is checked: the module imports, the attribute exists and is not already wrapped by
someone else, its parameters match, and its source hashes to a recorded fingerprint. Anything else
is drift: reported with the reason and left alone. `HOTFUSE_ALLOW_DRIFT=1` accepts a fingerprint
mismatch when the parameters still match, loudly.

Fingerprints are computed from the source file's text (AST segment of the definition, decorators
included, whitespace-normalised), so the same function serves the live check and the offline check
of released wheels without importing them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    module: str
    qualname: str                       # "fn" or "Class.method"
    params: tuple[str, ...]             # parameter names the replacement relies on, in order
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # fingerprint -> releases seen in

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class Validation:
    target: Target
    ok: bool
    reason: str
    owner: Any = None        # module or class that holds the attribute
    attr: str = ""
    original: Any = None     # the live object (function), unwrapped from static/classmethod
    raw: Any = None          # what owner.__dict__ holds (keeps staticmethod/classmethod wrappers)
    fingerprint: str | None = None
    drift_allowed: bool = False  # applied despite a fingerprint mismatch (HOTFUSE_ALLOW_DRIFT)


def _normalise(segment: str) -> str:
    lines = [line.rstrip() for line in textwrap.dedent(segment).splitlines()]
    return "\n".join(line for line in lines if line)


def _definitions(body: list[ast.stmt], name: str) -> list[ast.AST]:
    """Definitions of `name` in a module or class body, including those in its top-level if/else and try
    blocks (a module may define one function per platform): all of them, in source order."""
    found = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try)):
            for block in [node.body, node.orelse] + [h.body for h in getattr(node, "handlers", [])]:
                found.extend(_definitions(block, name))
    return found


def fingerprint_source(source: str, qualname: str) -> str | None:
    """Fingerprint of the definition `qualname` (decorators included) in module source text.

    Where a module defines it more than once (per platform, under if/else), all definitions count."""
    tree = ast.parse(source)
    nodes: list[ast.AST] = [tree]
    for part in qualname.split("."):
        nodes = [d for n in nodes for d in _definitions(n.body, part)]  # type: ignore[attr-defined]
        if not nodes:
            return None
    lines = source.splitlines()
    segments = []
    for node in nodes:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        segments.append("\n".join(lines[start - 1: node.end_lineno]))
    return hashlib.sha256("\n".join(_normalise(seg) for seg in segments).encode()).hexdigest()[:16]


def fingerprint_live(module_name: str, qualname: str) -> str | None:
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    path = inspect.getsourcefile(module)
    if path is None:
        return None
    with open(path, encoding="utf-8") as fh:
        return fingerprint_source(fh.read(), qualname)


def _foreign_wrapper(live: Any, module: str) -> str | None:
    """Describe a wrapper around `live` that is not the engine's own decorator, or None.

    Engine functions legitimately arrive wrapped by decorators: torch's (torch.compile,
    assume_constant_result) and the engine's own (e.g. a caching decorator), whose code lives in torch or in
    the engine package. A wrapper made by hotfuse itself, or by a plugin framework (the engine's
    `plugins` package, or code from anywhere else), means someone patched the target already.
    """
    import os

    import torch  # noqa: F401  (imported by every engine module we target anyway)

    torch_dir = os.path.dirname(sys.modules["torch"].__file__)
    engine = sys.modules.get(module.split(".")[0])
    engine_dir = os.path.dirname(getattr(engine, "__file__", None) or "") or None
    layer = live
    for _ in range(16):
        if getattr(layer, "__hotfuse__", None):
            return f"hotfuse patch for {layer.__hotfuse__}"
        inner = getattr(layer, "__wrapped__", None)
        if inner is None:
            return None
        code_file = getattr(getattr(layer, "__code__", None), "co_filename", "") or ""
        engine_decorator = (engine_dir is not None and code_file.startswith(engine_dir + os.sep)
                            and f"{os.sep}plugins{os.sep}" not in code_file)
        if not code_file.startswith(torch_dir) and not engine_decorator:
            return f"wrapped by {getattr(layer, '__module__', '?')}.{getattr(layer, '__qualname__', '?')}"
        layer = inner
    return "wrapper chain too deep"


def _param_names(fn: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(fn).parameters)


def validate(target: Target, allow_drift: bool = False) -> Validation:
    """Check the live target against what was validated. Never patches; never raises on drift."""
    try:
        owner: Any = importlib.import_module(target.module)
    except Exception as exc:  # an engine module that fails to import is drift, not a crash
        return Validation(target, False, f"module {target.module} does not import ({type(exc).__name__}: {exc})")
    *owner_path, attr = target.qualname.split(".")
    for part in owner_path:
        owner = getattr(owner, part, None)
        if owner is None:
            return Validation(target, False, f"{target.module}.{part} is missing")
    if not hasattr(owner, attr):
        return Validation(target, False, f"{target.dotted} is missing")
    raw = vars(owner).get(attr, getattr(owner, attr))
    live = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
    foreign = _foreign_wrapper(live, target.module)
    if foreign:
        return Validation(target, False, f"{target.dotted} is already patched ({foreign})", owner, attr, live, raw)
    try:
        params = _param_names(live)
    except (TypeError, ValueError) as exc:
        return Validation(target, False, f"{target.dotted} has no inspectable signature ({exc})", owner, attr, live, raw)
    if params != target.params:
        return Validation(
            target, False, f"{target.dotted} parameters are {params}, validated {target.params}", owner, attr, live, raw
        )
    fp = fingerprint_live(target.module, target.qualname)
    if fp in target.fingerprints:
        return Validation(target, True, f"source matches fingerprint {fp} ({target.fingerprints[fp]})",
                          owner, attr, live, raw, fp)
    reason = f"{target.dotted} source fingerprint {fp} matches no validated release"
    if allow_drift:
        return Validation(target, True, reason + "; applied anyway (HOTFUSE_ALLOW_DRIFT=1, signature matches)",
                          owner, attr, live, raw, fp, drift_allowed=True)
    return Validation(target, False, reason, owner, attr, live, raw, fp)
