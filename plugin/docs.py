"""Tables rendered from the registry: the README's generated sections and `hotfuse status` output.

The README holds blocks between `<!-- hotfuse:NAME -->` and `<!-- /hotfuse:NAME -->`; `hotfuse readme`
rewrites them from the registry and `hotfuse readme --check` (run by the tests) fails when they are stale.
The `matrix` block is rendered from the compatibility matrix file (`docs/compat-matrix.json` next to the
README, written by `hotfuse matrix --write`), not from the registry alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from hotfuse._version import __version__
from hotfuse.flags import ENV_DOCS
from hotfuse.registry import ENGINES, FUSION_NAMES, FUSIONS, State


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fusions_table() -> str:
    rows = [[f"`{f.name}`", f.summary, f.why, "; ".join(f.upstream)] for f in FUSIONS]
    return _md_table(["fusion", "what", "why", "upstream history"], rows)


def support_table() -> str:
    rows = []
    for f in FUSIONS:
        row = [f"`{f.name}`"]
        for engine in ENGINES:
            s = f.support(engine)
            if s is None:
                row.append("not applicable")
            elif s.adapter:
                row.append(f"adapter `{s.adapter}` (validated {s.versions})")
            else:
                row.append(f"{s.state.value}: {s.reason}")
        rows.append(row)
    return _md_table(["fusion"] + list(ENGINES), rows)


def flags_table() -> str:
    return _md_table(["variable", "meaning"], [[f"`{k}`", v] for k, v in ENV_DOCS])


def _matrix_cell(entry: dict) -> str:
    state, disabled = entry["state"], entry["disabled"]["state"]
    if disabled == state or (state == State.ACTIVE.value and disabled == State.REFERENCE.value):
        return state
    return f"{state} (disable: {disabled})"


def render_matrix(doc: dict) -> str:
    """Markdown table: one row per release, one column per fusion, the state with HOTFUSE=1."""
    rows = [[f"{r['dist']} {r['version']}"] + [_matrix_cell(r["fusions"][name]) for name in FUSION_NAMES]
            for r in doc["releases"]]
    legend = ("State with `HOTFUSE=1`, from each release's wheel source checked offline. Under "
              "`HOTFUSE_DISABLE=<name>` an `active` fusion runs the engine's unfused reference path and any "
              "other state stays as it is, unless the cell says `(disable: ...)`. `unsupported`: the release has no "
              "plugin entry point, so hotfuse never loads there.")
    return _md_table(["release"] + [f"`{n}`" for n in FUSION_NAMES], rows) + "\n\n" + legend


def matrix_table(root: str) -> str:
    """The compatibility matrix of the repository at `root` (the README's directory)."""
    from hotfuse.compat import MATRIX_FILE, REGENERATE

    path = os.path.join(root, MATRIX_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: the README's matrix block is rendered from it; "
                                f"generate it with `{REGENERATE}`")
    with open(path, encoding="utf-8") as fh:
        return render_matrix(json.load(fh))


# Block name -> renderer, given the directory of the README being synced.
GENERATED: dict[str, Callable[[str], str]] = {
    "fusions": lambda root: fusions_table(),
    "support": lambda root: support_table(),
    "flags": lambda root: flags_table(),
    "matrix": matrix_table,
}


def sync_readme(path: str, write: bool) -> bool:
    """Regenerate every generated block of the README at `path`. Returns True if anything changed."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = text
    root = os.path.dirname(os.path.abspath(path))
    for name, render in GENERATED.items():
        pattern = re.compile(rf"(<!-- hotfuse:{name} -->\n).*?(<!-- /hotfuse:{name} -->)", re.S)
        if not pattern.search(new):
            raise ValueError(f"{path} lacks the <!-- hotfuse:{name} --> block")
        block = render(root)
        new = pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), new)
    if new != text and write:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    return new != text


def retire_when(engine: str) -> dict[str, str]:
    """Per fusion with an adapter for `engine`: when that patch is no longer needed."""
    return {f.name: s.retire_when for f in FUSIONS if (s := f.support(engine)) and s.adapter}


def status_table(flags, states: dict, not_installed: list[str], verbose: bool = False) -> str:
    out = [f"hotfuse {__version__}"]
    raw = ", ".join(f"{k}={v!r}" for k, v in flags.raw.items()) or "HOTFUSE not set"
    out.append(f"flags: {raw}")
    if flags.error:
        out.append(f"ERROR: {flags.error}")
    for engine, state in states.items():
        out.append("")
        out.append(f"{engine} {state.engine_version}")
        if state.unsupported:
            out.append(f"  unsupported: {state.unsupported}")
        for infra, what in state.infra.items():
            out.append(f"  [{infra}] {what}")
        width = max(len(n) for n in state.fusions)
        retire = retire_when(engine) if verbose else {}
        for name, r in state.fusions.items():
            mark = "  !" if r.failed else "   "
            out.append(f"{mark}{name:<{width}}  {r.state.value:<15} {r.reason}")
            if retire.get(name):
                out.append(f"   {'':<{width}}  {'':<15} retire when: {retire[name]}")
        if state.error:
            out.append(f"  ERROR: {state.error}")
    for engine in not_installed:
        out.append("")
        out.append(f"{engine}: not installed")
    return "\n".join(out)
